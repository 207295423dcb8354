"""Rows compared as whole prior-correction curves, at matched head accuracy, and pre-registered primary comparisons
with a Holm correction.

Why: at α = 0 even the clairvoyant oracle has almost no tail accuracy, so a tail gap between two rows at one α is
mostly a difference in how far each sits along its own head/tail trade-off. The fair reading is a rival's tail
accuracy *at BehaviorLM's head accuracy*:

1. BehaviorLM's α is chosen on a val split (its ``alpha``); its head accuracy there is the target;
2. on the rival's own val curve, the α where its head accuracy equals the target is found by linear
   interpolation (clamped to the curve's ends, and said so);
3. the rival's tail accuracy at that α is read on the test split, beside BehaviorLM's at its own α.

The interval comes from a bootstrap that resamples the users of each split (val and test users differ) and the
training seeds, recomputing every curve on each resample (:func:`matched_head_delta`). Curves are per-α predicted
behavior codes (``results.json``'s ``per_seed.*.curve``), so this needs no model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from behaviorlm_plugin.eval.bootstrap import metric_weighted, resample_weights

CURVE_ALPHAS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)
"""The α grid of every row's curve (the prior correction's range; its ends cover the oracle's best)."""


def curve_metrics(labels: Sequence[int], codes: Sequence[Sequence[int]], cats: Sequence[str], weights=None) -> dict:
    """Per α (rows of ``codes``), head/tail/Acc_avg under each row of ``weights`` ([B, n]; None: the sample)."""
    y = np.asarray(labels)
    w = np.ones((1, len(y))) if weights is None else weights
    c = np.asarray(cats)
    out = {}
    for metric in ("acc_head", "acc_tail", "acc_avg"):
        out[metric] = np.stack([metric_weighted(y, np.asarray(p) == y, w, c, metric) for p in codes])  # [A, B]
    return out


def alpha_at_head(alphas: np.ndarray, head: np.ndarray, target: float) -> tuple[float, bool]:
    """The α where the curve's head accuracy equals ``target`` (linear between grid points; the first crossing),
    and whether ``target`` lies inside the curve's range (else the nearest end's α)."""
    h = np.asarray(head, dtype=float)
    for i in range(len(h) - 1):
        lo, hi = h[i], h[i + 1]
        if np.isnan(lo) or np.isnan(hi):
            continue
        if min(lo, hi) <= target <= max(lo, hi):
            if hi == lo:
                return float(alphas[i]), True
            t = (target - lo) / (hi - lo)
            return float(alphas[i] + t * (alphas[i + 1] - alphas[i])), True
    valid = ~np.isnan(h)
    if not valid.any():
        return float(alphas[0]), False
    nearest = int(np.nanargmin(np.abs(h - target)))
    return float(alphas[nearest]), False


def value_at(alphas: np.ndarray, values: np.ndarray, alpha: float) -> float:
    return float(np.interp(alpha, alphas, values))


def _curves_per_seed(row: dict, val: str, test: str) -> list[dict]:
    return [r["curve"] for r in row["per_seed"].values() if "curve" in r and val in r["curve"] and test in r["curve"]]


def matched_head_delta(
    results: dict, rival: str, *, val: str, test: str = "test_balanced", n_boot: int = 1000, seed: int = 0
) -> dict | None:
    """The rival's test tail accuracy at BehaviorLM's val head accuracy, minus BehaviorLM's test tail accuracy at its
    own α; with a 95 % interval over users (each split) and seeds, and a two-sided bootstrap p-value."""
    variants, ours = results["variants"], results["ours"]
    samples, cats = results["eval_samples"], results["categories"]
    if val not in samples or test not in samples:
        return None
    ours_c, rival_c = _curves_per_seed(variants[ours], val, test), _curves_per_seed(variants[rival], val, test)
    if not ours_c or not rival_c:
        return None
    ours_alpha = [float(r.get("alpha", 0.0)) for r in variants[ours]["per_seed"].values() if "curve" in r]
    alphas = np.asarray(ours_c[0]["alphas"], dtype=float)
    rng = np.random.default_rng(seed)
    w_val = np.vstack(
        [
            np.ones(len(samples[val]["labels"])),
            resample_weights(len(samples[val]["labels"]), n_boot, rng, samples[val].get("users")),
        ]
    )
    w_test = np.vstack([np.ones(len(samples[test]["labels"])), resample_weights(
        len(samples[test]["labels"]), n_boot, rng, samples[test].get("users"))])  # fmt: skip
    # Row 0 of every weight matrix is the sample itself (the point estimate); rows 1.. the resamples.
    o_val = [curve_metrics(samples[val]["labels"], c[val], cats, w_val) for c in ours_c]
    o_test = [curve_metrics(samples[test]["labels"], c[test], cats, w_test) for c in ours_c]
    r_val = [curve_metrics(samples[val]["labels"], c[val], cats, w_val) for c in rival_c]
    r_test = [curve_metrics(samples[test]["labels"], c[test], cats, w_test) for c in rival_c]
    pick_o = np.vstack([np.arange(len(ours_c))[None, :], rng.integers(0, len(ours_c), (n_boot, len(ours_c)))])
    pick_r = np.vstack([np.arange(len(rival_c))[None, :], rng.integers(0, len(rival_c), (n_boot, len(rival_c)))])
    deltas, outside = [], 0
    for b in range(n_boot + 1):
        o_head = np.mean([value_at(alphas, o_val[s]["acc_head"][:, b], ours_alpha[s]) for s in pick_o[b]])
        o_tail = np.mean([value_at(alphas, o_test[s]["acc_tail"][:, b], ours_alpha[s]) for s in pick_o[b]])
        r_tails = []
        for s in pick_r[b]:
            a_r, inside = alpha_at_head(alphas, r_val[s]["acc_head"][:, b], o_head)
            outside += (not inside) and b == 0
            r_tails.append(value_at(alphas, r_test[s]["acc_tail"][:, b], a_r))
        deltas.append(float(np.mean(r_tails)) - o_tail)
    point, boot = deltas[0], np.asarray([d for d in deltas[1:] if not np.isnan(d)])
    if np.isnan(point) or not len(boot):
        return None
    lo, hi = np.percentile(boot, [2.5, 97.5])
    p = float(min(1.0, 2 * min((boot <= 0).mean(), (boot >= 0).mean())))
    return {
        "delta": point,
        "ci95": [float(lo), float(hi)],
        "p": p,
        "n_boot": n_boot,
        "resampled": "users and seeds",
        "matched_outside_curve": int(outside),
    }


def holm(pvalues: dict[str, float | None], alpha: float = 0.05) -> dict[str, dict]:
    """Holm's step-down correction over the primary comparisons: ``{name: {p, p_holm, reject}}``."""
    known = sorted(((p, k) for k, p in pvalues.items() if p is not None), key=lambda t: t[0])
    m, out, running = len(known), {}, 0.0
    still = True
    for i, (p, k) in enumerate(known):
        adj = min(1.0, max(running, (m - i) * p))
        running = adj
        still = still and adj <= alpha
        out[k] = {"p": p, "p_holm": adj, "reject": bool(still)}
    for k, p in pvalues.items():
        if p is None:
            out[k] = {"p": None, "p_holm": None, "reject": False}
    return out
