"""Paired bootstrap confidence intervals over evaluation samples, and the verdict they allow.

Two rows scored on the same samples are compared by resampling (with replacement) and recomputing each row's
metric on every resample; the 2.5 and 97.5 percentiles of the difference are the 95 % interval. A verdict is
*win* or *loss* only when the interval excludes 0.

What is resampled decides what the interval covers:

* ``groups=None``: the samples themselves (windows), as if each were independent;
* ``groups``: whole clusters, e.g. users (a user's ~15 windows share a persona and taste, so they are not
  independent): each resample draws as many users as there are, with replacement, and every window of a drawn
  user counts once per draw. With clustered data this interval is wider, and honest;
* ``resample_seeds=True``: each row's training seeds are drawn with replacement too, so training-seed variance
  is in the interval (with one seed it adds nothing; report the seed count beside it).

With several seeds and ``resample_seeds=False`` a row's metric on a resample is its mean over seeds, so the
interval covers sample noise around the seed mean. Resamples are weights (how many times each sample is
drawn), so a cluster resample costs what a window resample does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

N_BOOT = 1000
CI_METRICS = ("accuracy", "acc_avg", "acc_head", "acc_medium", "acc_tail")
"""Metrics with an interval: accuracy (= weighted recall) and the class means."""


def metric_weighted(labels: np.ndarray, correct: np.ndarray, weights: np.ndarray, cats: np.ndarray, metric: str):
    """``metric`` under each row of ``weights`` ([B, n]: how many times each sample is in resample b)."""
    w = weights.astype(np.float64)
    ok = w * correct[None, :]
    if metric == "accuracy":
        total = w.sum(axis=1)
        return np.where(total > 0, ok.sum(axis=1) / np.maximum(total, 1e-12), np.nan)
    n_cls = len(cats)
    onehot = np.zeros((len(labels), n_cls))
    onehot[np.arange(len(labels)), labels] = 1.0
    support = w @ onehot  # [B, n_cls]
    hits = ok @ onehot
    mask = support > 0
    if metric != "acc_avg":
        mask = mask & (cats == metric.removeprefix("acc_"))[None, :]
    recall = np.where(mask, hits / np.maximum(support, 1e-12), 0.0)
    count = mask.sum(axis=1)
    return np.where(count > 0, recall.sum(axis=1) / np.maximum(count, 1), np.nan)


def resample_weights(n: int, n_boot: int, rng: np.random.Generator, groups: Sequence | None = None) -> np.ndarray:
    """[n_boot, n] draw counts: of the samples, or (with ``groups``) of whole clusters, every member of a drawn
    cluster counting once per draw."""
    if groups is None:
        idx = rng.integers(0, n, size=(n_boot, n))
        return np.stack([np.bincount(row, minlength=n) for row in idx])
    _, code = np.unique(np.asarray(groups), return_inverse=True)
    k = int(code.max()) + 1
    drawn = rng.integers(0, k, size=(n_boot, k))
    per_cluster = np.stack([np.bincount(row, minlength=k) for row in drawn])  # [B, k]
    return per_cluster[:, code]


def paired_bootstrap(
    labels: Sequence[int],
    preds_a: Sequence[Sequence[int]],
    preds_b: Sequence[Sequence[int]],
    categories: Sequence[str],
    metric: str,
    *,
    n_boot: int = N_BOOT,
    seed: int = 0,
    groups: Sequence | None = None,
    resample_seeds: bool = False,
) -> dict:
    """``metric(a) - metric(b)`` with its 95 % paired-bootstrap interval (what is resampled: module docstring).

    ``labels``: class codes of the samples; ``preds_a``/``preds_b``: one list of predicted codes per seed,
    same samples in the same order; ``categories``: head/medium/tail per class code; ``groups``: a cluster id
    per sample (the user) or None.
    """
    y = np.asarray(labels)
    cats = np.asarray(categories)
    a = [np.asarray(p) == y for p in preds_a]
    b = [np.asarray(p) == y for p in preds_b]
    if not a or not b or any(len(p) != len(y) for p in (*a, *b)):
        raise ValueError("paired_bootstrap: every prediction list must cover the same samples as labels")
    if groups is not None and len(groups) != len(y):
        raise ValueError(f"paired_bootstrap: {len(groups)} groups for {len(y)} samples; give one per sample")
    rng = np.random.default_rng(seed)
    w = resample_weights(len(y), n_boot, rng, groups)
    ones = np.ones((1, len(y)))
    per_a = np.stack([metric_weighted(y, c, w, cats, metric) for c in a])  # [S_a, B]
    per_b = np.stack([metric_weighted(y, c, w, cats, metric) for c in b])
    delta = float(
        np.mean([metric_weighted(y, c, ones, cats, metric)[0] for c in a])
        - np.mean([metric_weighted(y, c, ones, cats, metric)[0] for c in b])
    )
    if resample_seeds:
        pick_a = rng.integers(0, len(a), size=(n_boot, len(a)))
        pick_b = rng.integers(0, len(b), size=(n_boot, len(b)))
        cols = np.arange(n_boot)[:, None]
        diffs = per_a[pick_a, cols].mean(axis=1) - per_b[pick_b, cols].mean(axis=1)
    else:
        diffs = per_a.mean(axis=0) - per_b.mean(axis=0)
    diffs = diffs[~np.isnan(diffs)]
    out = {"n": len(y), "n_boot": n_boot, "resampled": "users" if groups is not None else "samples"}
    if resample_seeds:
        out["resampled"] += " and seeds"
    if np.isnan(delta) or not len(diffs):
        return {"delta": None, "ci95": None, **out}
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    p = float(min(1.0, 2 * min((diffs <= 0).mean(), (diffs >= 0).mean())))  # two-sided, from the resamples
    return {"delta": delta, "ci95": [float(lo), float(hi)], "p": p, **out}


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
