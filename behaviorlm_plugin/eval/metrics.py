"""Long-tail behavior-prediction metrics (the paper's Appendix B), pure functions.

* ``weighted_precision`` / ``weighted_recall``: per-class precision/recall weighted by
  true-class support, as scikit-learn's ``average="weighted"`` (recall = hit rate).
* ``acc_avg``: mean per-class recall over the classes that have test samples.
* ``acc_head`` / ``acc_medium`` / ``acc_tail``: the same mean within each frequency
  category (training frequency > 5%, 1–5%, < 1%; thresholds live in the categories).
* ``hr@k`` / ``ndcg@k`` from ranked candidate lists.

A class without test samples has no accuracy: it is listed under
``classes_without_test_samples`` and left out of every mean, never counted as 0 or NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

PAPER_COLUMNS = ("weighted_precision", "weighted_recall", "acc_avg", "acc_head", "acc_medium", "acc_tail")
SUMMARY_KEYS = (*PAPER_COLUMNS, "n")  # what manifests and results.json keep of a metrics dict
SHORT_NAMES = {
    "weighted_precision": "wP",
    "weighted_recall": "wR",
    "acc_avg": "Acc_avg",
    "acc_head": "head",
    "acc_medium": "medium",
    "acc_tail": "tail",
}
# The paper reports weighted metrics on the natural test set and class means on the balanced one.
PAPER_SPLIT = {c: "test" if c.startswith("weighted_") else "test_balanced" for c in PAPER_COLUMNS}
REPORT_COLUMNS: tuple[tuple[str, str, str], ...] = tuple((SHORT_NAMES[c], PAPER_SPLIT[c], c) for c in PAPER_COLUMNS)
"""(short name, split, metric key) of the six columns in every report."""


def per_class_counts(y_true: Sequence[str], y_pred: Sequence[str]) -> dict[str, dict[str, int]]:
    """True positives, false positives and support for every label seen in either list."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}")
    labels = sorted(set(y_true) | set(y_pred))
    counts = {c: {"tp": 0, "fp": 0, "support": 0} for c in labels}
    for t, p in zip(y_true, y_pred, strict=True):
        counts[t]["support"] += 1
        if t == p:
            counts[t]["tp"] += 1
        else:
            counts[p]["fp"] += 1
    return counts


def classification_metrics(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    categories: dict[str, str],
    *,
    all_labels: Sequence[str] | None = None,
) -> dict:
    """The paper's metric table plus per-behavior accuracy.

    ``categories`` maps each behavior to ``head``/``medium``/``tail`` (from the training
    split, e.g. ``stats.json → behaviors[b].head_medium_tail``). ``all_labels`` lists every
    behavior so the ones missing from the test set are reported as such.
    """
    if not y_true:
        raise ValueError("no samples to evaluate")
    unknown = sorted(set(y_true) - set(categories))
    if unknown:
        raise ValueError(f"labels {unknown[:5]} have no frequency category; pass the training split's categories")
    counts = per_class_counts(y_true, y_pred)
    n = len(y_true)
    w_prec = w_rec = 0.0
    per_class: dict[str, dict] = {}
    for c, k in counts.items():
        if k["support"] == 0:
            continue
        precision = k["tp"] / (k["tp"] + k["fp"]) if (k["tp"] + k["fp"]) else 0.0
        recall = k["tp"] / k["support"]
        w_prec += precision * k["support"] / n
        w_rec += recall * k["support"] / n
        per_class[c] = {"accuracy": recall, "precision": precision, "support": k["support"], "category": categories[c]}
    missing = sorted(set(all_labels or categories) - set(per_class))
    out = {"weighted_precision": w_prec, "weighted_recall": w_rec, "n": n}
    recalls = [v["accuracy"] for v in per_class.values()]
    out["acc_avg"] = float(np.mean(recalls))
    for cat in ("head", "medium", "tail"):
        vals = [v["accuracy"] for v in per_class.values() if v["category"] == cat]
        out[f"acc_{cat}"] = float(np.mean(vals)) if vals else None
        out[f"n_classes_{cat}"] = len(vals)
    out["per_behavior"] = per_class
    out["classes_without_test_samples"] = missing
    return out


def ranking_metrics(ranked: Sequence[Sequence[str]], y_true: Sequence[str], ks: Sequence[int] = (1, 3, 5)) -> dict:
    """HR@k and NDCG@k (one relevant item per sample) from ranked candidate lists."""
    if len(ranked) != len(y_true):
        raise ValueError(f"{len(ranked)} ranked lists for {len(y_true)} labels")
    out = {}
    for k in ks:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        hits, gains = 0, 0.0
        for lst, t in zip(ranked, y_true, strict=True):
            top = list(lst[:k])
            if t in top:
                hits += 1
                gains += 1.0 / math.log2(top.index(t) + 2)
        out[f"hr@{k}"] = hits / len(y_true)
        out[f"ndcg@{k}"] = gains / len(y_true)
    return out


def format_table(rows: dict[str, dict], columns: Sequence[str] = PAPER_COLUMNS) -> str:
    """A plain terminal table: one row per model/variant, paper column order."""
    names = [SHORT_NAMES.get(c, c) for c in columns]
    width = max([len(r) for r in rows] + [5])
    lines = [" | ".join([" " * width, *[f"{n:>7}" for n in names]])]
    lines.append("-" * len(lines[0]))
    for name, m in rows.items():
        cells = [f"{m[c]:7.4f}" if isinstance(m.get(c), float) else f"{'n/a':>7}" for c in columns]
        lines.append(" | ".join([f"{name:<{width}}", *cells]))
    return "\n".join(lines)
