"""The prior correction as a user option: re-ranking saved rows and `auto` on val."""

import numpy as np
import pytest

from behaviorlm_plugin.eval.prior_correction import choice_text, choose_alpha, rerank_rows
from behaviorlm_plugin.eval.rows import row_from_probs
from behaviorlm_plugin.hparams.prior_correction_args import (
    AUTO,
    PriorCorrectionArguments,
    PriorCorrectionError,
)
from behaviorlm_plugin.hparams.prior_correction_args import parse_alpha as parse_prior_correction

FREQ = {"a": 0.8, "b": 0.15, "c": 0.05}
CATS = {"a": "head", "b": "medium", "c": "tail"}


def _rows(n=600, seed=0):
    """A calibrated scorer on data where tail 'c' is often second best: the balanced rule finds it."""
    rng = np.random.default_rng(seed)
    names = list(FREQ)
    rows = []
    for i in range(n):
        y = rng.choice(3, p=list(FREQ.values()))
        p = np.array(list(FREQ.values())) * np.exp(rng.normal(0, 0.3, 3))
        p[y] *= 3.0
        meta = {"id": f"s{i}", "label": names[y], "candidates": names}
        rows.append(row_from_probs(meta, names, p, method="score", fmt=None))
    return rows


def test_parse_prior_correction():
    assert parse_prior_correction("auto") == AUTO and parse_prior_correction(" AUTO ") == AUTO
    assert parse_prior_correction("0.5") == 0.5 and parse_prior_correction(0) == 0
    for bad in ("-1", "maybe", float("nan")):
        with pytest.raises(PriorCorrectionError):
            parse_prior_correction(bad)


def test_rerank_matches_the_rule_and_zero_is_identity():
    rows = _rows(50)
    assert rerank_rows(rows, FREQ, 0) == rows
    out = rerank_rows(rows, FREQ, 1.0)
    for r, o in zip(rows, out, strict=True):
        p = {x["behavior"]: x["prob"] for x in r["ranked"]}
        expected = max(p, key=lambda b: np.log(p[b]) - np.log(FREQ[b]))
        assert o["prediction"] == expected and o["alpha"] == 1.0
        assert abs(sum(x["prob"] for x in o["ranked"]) - 1) < 1e-9


def test_rerank_refuses_a_cut_ranking():
    row = _rows(1)[0]
    cut = {**row, "ranked": row["ranked"][:2]}
    with pytest.raises(PriorCorrectionError, match="top-k 0"):
        rerank_rows([cut], FREQ, 0.5)


def test_auto_picks_the_val_winner_and_respects_a_head_floor():
    rows = _rows()
    choice = choose_alpha(rows, FREQ, CATS, grid=[0, 0.5, 1.0, 1.5])
    best = max(choice.trials, key=lambda t: t["acc_avg"])
    assert choice.alpha == best["alpha"] > 0
    assert choice.val_counts["c"] == sum(r["label"] == "c" for r in rows)
    floor = choice.trials[0]["acc_head"] - 0.01  # only alphas that keep head within a point of the argmax
    held = choose_alpha(rows, FREQ, CATS, grid=[0, 0.5, 1.0, 1.5], head_floor=floor)
    assert all(t["acc_head"] >= floor for t in held.trials if t["alpha"] == held.alpha)
    assert held.alpha <= choice.alpha
    impossible = choose_alpha(rows, FREQ, CATS, grid=[0.5, 1.0], head_floor=1.01)
    assert impossible.alpha == 0 and any("no alpha keeps head" in w for w in impossible.warnings)
    assert "chosen" in choice_text(choice)


def test_auto_warns_about_small_classes():
    rows = _rows(40, seed=3)
    choice = choose_alpha(rows, FREQ, CATS, grid=[0, 1])
    assert any("fewer than 5 samples" in w for w in choice.warnings)


def test_evaluate_file_under_the_rule_writes_alpha(prepared, tmp_path):
    from behaviorlm_plugin.data.dataset import DatasetStats
    from behaviorlm_plugin.eval.evaluate import evaluate_file
    from behaviorlm_plugin.extras.fileio import atomic_write_jsonl, read_jsonl

    d, _ = prepared
    stats = DatasetStats.read(d / "beh" / "stats.json")
    rng = np.random.default_rng(0)
    rows = []
    for m in read_jsonl(d / "beh" / "test.meta.jsonl"):
        p = np.array([stats.frequency[c] + 1e-3 for c in m["candidates"]]) * np.exp(rng.normal(0, 0.5, 35))
        rows.append(row_from_probs(m, m["candidates"], p, method="score", fmt=None))
    atomic_write_jsonl(tmp_path / "preds.jsonl", rows)
    plain = evaluate_file(tmp_path / "preds.jsonl", stats, tmp_path / "a")
    fixed = evaluate_file(
        tmp_path / "preds.jsonl", stats, tmp_path / "b", prior_correction=PriorCorrectionArguments(alpha=1.0)
    )
    assert plain["alpha"] == 0 and fixed["alpha"] == 1.0
    assert (tmp_path / "b" / "preds_prior_corrected.jsonl").exists()
    assert fixed["acc_tail"] >= plain["acc_tail"]  # a prior-shaped scorer: dividing by the prior frees the tail
    rule = PriorCorrectionArguments(alpha="auto", alpha_grid=[0, 1])
    auto = evaluate_file(tmp_path / "preds.jsonl", stats, tmp_path / "c", prior_correction=rule, val_preds=rows)
    assert auto["alpha"] in (0.0, 1.0) and auto["alpha_choice"]["val_counts"]
    with pytest.raises(PriorCorrectionError, match="val"):
        evaluate_file(tmp_path / "preds.jsonl", stats, tmp_path / "d", prior_correction=rule)


def test_predict_arguments_check_the_rule():
    from behaviorlm_plugin.hparams.eval_args import PredictArguments

    base = {"model": "m", "data": "d.jsonl", "out": "o.jsonl"}
    assert PredictArguments(**base, prior_correction=PriorCorrectionArguments("0.5")).prior_correction.alpha == 0.5
    with pytest.raises(ValueError, match="val-preds"):
        PredictArguments(**base, prior_correction=PriorCorrectionArguments("auto"))
    with pytest.raises(ValueError, match="method score"):
        PredictArguments(**base, prior_correction=PriorCorrectionArguments(1), method="generate")
