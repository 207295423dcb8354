import numpy as np
import pytest
from sklearn.metrics import precision_score, recall_score

from behaviorlm_plugin.eval.metrics import classification_metrics, format_table, ranking_metrics

CATS = {"a": "head", "b": "head", "c": "medium", "d": "tail", "e": "tail", "f": "tail"}


def test_weighted_precision_recall_match_sklearn():
    rng = np.random.default_rng(0)
    labels = list("abcde")
    y_true = rng.choice(labels, size=300, p=[0.5, 0.2, 0.15, 0.1, 0.05]).tolist()
    y_pred = [t if rng.random() < 0.6 else rng.choice([*labels, "f"]) for t in y_true]
    m = classification_metrics(y_true, y_pred, CATS)
    kw = {"average": "weighted", "zero_division": 0}
    assert m["weighted_precision"] == pytest.approx(precision_score(y_true, y_pred, **kw), abs=1e-12)
    assert m["weighted_recall"] == pytest.approx(recall_score(y_true, y_pred, **kw), abs=1e-12)
    assert m["weighted_recall"] == pytest.approx(np.mean(np.array(y_true) == np.array(y_pred)))


def test_category_accuracies_are_class_means():
    y_true = ["a", "a", "b", "c", "d", "d"]
    y_pred = ["a", "b", "b", "a", "d", "a"]
    m = classification_metrics(y_true, y_pred, CATS)
    assert m["per_behavior"]["a"]["accuracy"] == 0.5
    assert m["acc_head"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["acc_medium"] == 0.0
    assert m["acc_tail"] == pytest.approx(0.5)
    assert m["acc_avg"] == pytest.approx((0.5 + 1 + 0 + 0.5) / 4)
    assert m["classes_without_test_samples"] == ["e", "f"]  # reported, not scored as 0
    assert "e" not in m["per_behavior"]


def test_empty_category_is_none_and_bad_input_is_refused():
    m = classification_metrics(["a"], ["a"], CATS)
    assert m["acc_tail"] is None and m["n_classes_tail"] == 0
    with pytest.raises(ValueError, match="no frequency category"):
        classification_metrics(["zzz"], ["a"], CATS)
    with pytest.raises(ValueError, match="y_pred has 2"):
        classification_metrics(["a"], ["a", "b"], CATS)


def test_ranking_metrics():
    ranked = [["a", "b", "c"], ["b", "a", "c"], ["c", "b", "a"]]
    r = ranking_metrics(ranked, ["a", "a", "d"], ks=(1, 2))
    assert r["hr@1"] == pytest.approx(1 / 3) and r["hr@2"] == pytest.approx(2 / 3)
    assert r["ndcg@2"] == pytest.approx((1 + 1 / np.log2(3)) / 3)


def test_table_renders_missing_as_na():
    m = classification_metrics(["a", "b"], ["a", "a"], CATS)
    table = format_table({"model": m})
    assert "wP" in table and "tail" in table and "n/a" in table
