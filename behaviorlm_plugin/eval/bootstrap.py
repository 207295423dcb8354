"""Paired bootstrap confidence intervals over evaluation samples, and the verdict they allow.

Two rows scored on the same samples are compared by resampling the samples (with replacement) and
recomputing each row's metric on every resample; the 2.5 and 97.5 percentiles of the difference are the
95 % interval. With several seeds a row's metric on a resample is its mean over seeds, so the interval
covers sample noise around the seed mean. A verdict is *win* or *loss* only when the interval excludes 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

N_BOOT = 1000
CI_METRICS = ("accuracy", "acc_avg", "acc_head", "acc_medium", "acc_tail")
"""Metrics with an interval: accuracy (= weighted recall) and the class means."""


def metric_batch(labels: np.ndarray, correct: np.ndarray, idx: np.ndarray, cats: np.ndarray, metric: str) -> np.ndarray:
    """``metric`` on each resample ``idx[b]`` (``correct``: bool per sample; ``cats``: category per class code)."""
    ok = correct[idx]  # [B, n]
    if metric == "accuracy":
        return ok.mean(axis=1)
    n_cls = len(cats)
    y = labels[idx]
    offs = (np.arange(len(idx))[:, None] * n_cls + y).ravel()
    support = np.bincount(offs, minlength=len(idx) * n_cls).reshape(len(idx), n_cls)
    hits = np.bincount(offs, weights=ok.ravel(), minlength=len(idx) * n_cls).reshape(len(idx), n_cls)
    mask = support > 0
    if metric != "acc_avg":
        mask = mask & (cats == metric.removeprefix("acc_"))[None, :]
    recall = np.where(mask, hits / np.maximum(support, 1), 0.0)
    count = mask.sum(axis=1)
    return np.where(count > 0, recall.sum(axis=1) / np.maximum(count, 1), np.nan)


def paired_bootstrap(
    labels: Sequence[int],
    preds_a: Sequence[Sequence[int]],
    preds_b: Sequence[Sequence[int]],
    categories: Sequence[str],
    metric: str,
    *,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> dict:
    """``metric(a) - metric(b)`` with its 95 % paired-bootstrap interval.

    ``labels``: class codes of the samples; ``preds_a``/``preds_b``: one list of predicted codes per seed,
    same samples in the same order; ``categories``: head/medium/tail per class code.
    """
    y = np.asarray(labels)
    cats = np.asarray(categories)
    a = [np.asarray(p) == y for p in preds_a]
    b = [np.asarray(p) == y for p in preds_b]
    if not a or not b or any(len(p) != len(y) for p in (*a, *b)):
        raise ValueError("paired_bootstrap: every prediction list must cover the same samples as labels")
    full = np.arange(len(y))[None, :]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y), size=(n_boot, len(y)))

    def mean_over_seeds(rows: list[np.ndarray], ix: np.ndarray) -> np.ndarray:
        return np.mean([metric_batch(y, c, ix, cats, metric) for c in rows], axis=0)

    delta = float((mean_over_seeds(a, full) - mean_over_seeds(b, full))[0])
    diffs = mean_over_seeds(a, idx) - mean_over_seeds(b, idx)
    diffs = diffs[~np.isnan(diffs)]
    if np.isnan(delta) or not len(diffs):
        return {"delta": None, "ci95": None, "n": len(y), "n_boot": n_boot}
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return {"delta": delta, "ci95": [float(lo), float(hi)], "n": len(y), "n_boot": n_boot}


def ci_verdict(result: dict | None) -> str:
    """'win' / 'loss' only when the interval excludes 0; otherwise 'within noise'."""
    if not result or result.get("ci95") is None:
        return "n/a"
    lo, hi = result["ci95"]
    if lo > 0:
        return "win"
    if hi < 0:
        return "loss"
    return "within noise"
