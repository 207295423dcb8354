"""The power calculation of issue 24: evaluation sizes for >= 0.8 power to detect a 0.05 tail difference.

From the pilot's per-sample predictions on ``val_balanced`` (``docs/results/cpu-main/pilot/top4/results.json``) at
the gate's size n: on the tail samples, how often plain fine-tuning and A-Tuning alone disagree in correctness
(``p10``: only fine-tuning right, ``p01``: only A-Tuning), each row at its best α. A paired difference of two rows'
tail accuracy on m tail samples then has variance ``DE * ((p10 + p01) - (p10 - p01)**2) / m``, where the design
effect ``DE`` (windows cluster by user) is the user bootstrap's variance of the difference over the
sample-level bootstrap's. The tail samples needed for power ``1 - beta`` at two-sided level ``alpha / k`` (Holm's
strictest step over ``k`` primary comparisons) to detect ``delta``::

    m = DE * (p10 + p01 - (p10 - p01)**2) * (z[1 - alpha / (2 k)] + z[1 - beta])**2 / delta**2

Seeds average the training noise on top of this (the pilot has one seed, so the calculation covers the
evaluation noise; cpu-main runs >= 3 seeds as a floor). With ``--tail-samples M`` (what a suite's caps give)
it also prints the minimum detectable effect at that size. Writes ``docs/results/cpu-main/pilot/power.json``.

    .venv/bin/python scripts/power.py --n 2000 --tail-samples 380
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import NormalDist

import numpy as np

from behaviorlm_plugin.eval.bootstrap import metric_weighted, resample_weights

ROOT = Path(__file__).resolve().parents[1]
PILOT = ROOT / "docs" / "results" / "cpu-main" / "pilot"
SPLIT = "val_balanced"


def _best_correct(curve: dict, labels: np.ndarray, cats: np.ndarray) -> np.ndarray:
    """Per-sample correctness at the row's best α (the highest Acc_avg on the split)."""
    w = np.ones((1, len(labels)))
    acc = [float(metric_weighted(labels, np.asarray(p) == labels, w, cats, "acc_avg")[0]) for p in curve[SPLIT]]
    return np.asarray(curve[SPLIT][int(np.argmax(acc))]) == labels


def power(results: dict, n: int, *, delta: float, alpha: float, beta: float, k: int, tail_samples: int | None,
          n_boot: int = 2000, seed: int = 0) -> dict:  # fmt: skip
    ev = results["eval_samples"][SPLIT]
    labels = np.asarray(ev["labels"])
    cats = np.asarray(results["categories"])
    tail = cats[labels] == "tail"
    tag = f"({n // 1000}k)"
    rows = {}
    for kind in ("fine-tuning", "A-Tuning alone"):
        rec = results["variants"].get(f"{kind} {tag}", {}).get("per_seed", {}).get("0")
        if rec is None or SPLIT not in rec.get("curve", {}):
            raise SystemExit(f"no {kind} {tag} row with a {SPLIT} curve in the pilot results; run its part first")
        rows[kind] = _best_correct(rec["curve"], labels, cats)
    ft, at = rows["fine-tuning"][tail], rows["A-Tuning alone"][tail]
    m_pilot = int(tail.sum())
    p10, p01 = float(np.mean(ft & ~at)), float(np.mean(~ft & at))
    var1 = (p10 + p01) - (p10 - p01) ** 2  # per-sample variance of the paired difference
    diff = ft.astype(float) - at.astype(float)
    rng = np.random.default_rng(seed)
    users = np.asarray(ev["users"])[tail]
    by_user = resample_weights(m_pilot, n_boot, rng, groups=users)
    by_sample = resample_weights(m_pilot, n_boot, rng)
    de = float(np.var(by_user @ diff / by_user.sum(1)) / max(np.var(by_sample @ diff / by_sample.sum(1)), 1e-12))
    de = max(de, 1.0)
    z = NormalDist().inv_cdf(1 - alpha / (2 * k)) + NormalDist().inv_cdf(1 - beta)
    needed = int(np.ceil(de * var1 * z**2 / delta**2))
    out = {
        "n": n,
        "split": SPLIT,
        "pilot_tail_samples": m_pilot,
        "p10_only_fine_tuning_right": p10,
        "p01_only_a_tuning_right": p01,
        "pilot_tail_difference": p10 - p01,
        "design_effect_users": de,
        "delta": delta,
        "alpha": alpha,
        "comparisons": k,
        "power": 1 - beta,
        "tail_samples_needed": needed,
    }
    if tail_samples:
        out["tail_samples_given"] = tail_samples
        out["minimum_detectable_effect"] = float(z * np.sqrt(de * var1 / tail_samples))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pilot", default=str(PILOT / "top4" / "results.json"))
    p.add_argument("--n", type=int, required=True, help="the gate's size (a pilot size: 1000, 2000, 4000, 8000)")
    p.add_argument("--delta", type=float, default=0.05, help="the tail difference to detect")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--power", type=float, default=0.8)
    p.add_argument("--comparisons", type=int, default=6, help="primary comparisons under Holm (cpu-main: 6)")
    p.add_argument("--tail-samples", type=int, default=None, help="tail samples a design scores (its MDE)")
    p.add_argument("--out", default=str(PILOT / "power.json"))
    a = p.parse_args()
    res = power(
        json.loads(Path(a.pilot).read_text()), a.n, delta=a.delta, alpha=a.alpha, beta=1 - a.power,
        k=a.comparisons, tail_samples=a.tail_samples,
    )  # fmt: skip
    print(json.dumps(res, indent=2))
    Path(a.out).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
