"""Majority and hour+place reference rows on chosen samples, scored by the ordinary metric code."""

import numpy as np
import pytest

from behaviorlm_plugin.data.dataset import PreparedDataset
from behaviorlm_plugin.eval.evaluate import evaluate_predictions
from behaviorlm_plugin.eval.reference import reference_rows
from behaviorlm_plugin.extras.fileio import read_jsonl


def test_reference_rows_follow_the_ids_and_the_rules(prepared):
    d, _ = prepared
    data = PreparedDataset(d, "beh")
    metas = read_jsonl(data.path("test").with_suffix(".meta.jsonl"))
    ids = [m["id"] for m in metas[:7]][::-1]
    rows = reference_rows(data, "test", ids)
    assert [r["id"] for r in rows["majority"]] == ids == [r["id"] for r in rows["hour+place"]]
    with np.load(data.path("train_all").with_suffix(".features.npz")) as z:
        majority = str(z["behaviors"][np.bincount(z["label"]).argmax()])
    assert {r["prediction"] for r in rows["majority"]} == {majority}
    m = evaluate_predictions(rows["majority"], data.stats)
    truth = [metas[[x["id"] for x in metas].index(i)]["label"] for i in ids]
    assert m["weighted_recall"] == pytest.approx(np.mean([t == majority for t in truth]))
    assert all(abs(sum(c["prob"] for c in r["ranked"]) - 1) < 1e-9 for r in rows["hour+place"])


def test_reference_rows_refuse_foreign_ids(prepared):
    d, _ = prepared
    with pytest.raises(ValueError, match="not from this data"):
        reference_rows(PreparedDataset(d, "beh"), "test", ["nope-1"])
