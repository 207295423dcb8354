"""The prior-corrected decision rule: rank by ``log p(b | x) - alpha * log prior(b)``.

``alpha = 0`` is the plain argmax (the natural-accuracy rule); ``alpha = 1`` divides by the training
prior (the balanced rule of logit adjustment, Menon et al. 2021). Any model that gives candidate scores
can move along the anchor/tail frontier this way, so the rule is shared by ``predict``, ``evaluate``,
the pipeline, the bench and ``serve``. The prior is each behavior's ``train_frequency`` in ``stats.json``.

Every ``preds.jsonl`` row of the scorer keeps its whole ``ranked`` list with probabilities, so moving along
the anchor/tail frontier needs no re-scoring: the rule re-ranks the saved probabilities. ``auto`` tries a grid
of alphas on the val predictions and keeps the one with the best mean per-class accuracy, or, with a
head-accuracy floor, the best one that keeps head accuracy at or above it. Tail classes are rare in the
natural val split, so the choice reports the per-class counts behind it and warns about classes with too few
samples to count. The settings are one block, :class:`~behaviorlm_plugin.hparams.prior_correction_args.
PriorCorrectionArguments`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from behaviorlm_plugin.data.dataset import DatasetStats
from behaviorlm_plugin.hparams.prior_correction_args import (
    AUTO,
    DEFAULT_ALPHA_GRID,
    PriorCorrectionArguments,
    PriorCorrectionError,
    check_alpha,
)

# A behavior never seen in training would get log 0 = -inf; floor it at a tenth of one training sample
# in a million so that alpha > 0 favours it strongly but finitely.
PRIOR_FLOOR = 1e-7


def log_prior(frequency: Mapping[str, float], candidates: Sequence[str]) -> np.ndarray:
    """``log prior`` per candidate, in the candidates' order, from ``{behavior: train_frequency}``."""
    missing = [c for c in candidates if c not in frequency]
    if missing:
        raise PriorCorrectionError(
            f"no training prior for {missing[:5]}: these candidates are not behaviors of the dataset's "
            "stats.json; pass the --stats of the dataset the model was tuned on"
        )
    f = np.array([float(frequency[c] or 0.0) for c in candidates], dtype=np.float64)
    return np.log(np.maximum(f, PRIOR_FLOOR))


def adjust_log_probs(log_probs: np.ndarray, log_prior_: np.ndarray, alpha: float) -> np.ndarray:
    """Scores under the rule (any leading batch shape; the last axis is the candidates)."""
    a = check_alpha(alpha)
    if a == 0:
        return np.asarray(log_probs, dtype=np.float64)
    return np.asarray(log_probs, dtype=np.float64) - a * np.asarray(log_prior_, dtype=np.float64)


def corrected_probs(probs: np.ndarray, log_prior_: np.ndarray, alpha: float) -> np.ndarray:
    """Candidate probabilities renormalised under the rule: ``softmax(log p - alpha * log prior)``.

    With alpha = 0 this is ``probs`` renormalised; the ranking of the result is the rule's decision."""
    p = np.asarray(probs, dtype=np.float64)
    with np.errstate(divide="ignore"):
        z = adjust_log_probs(np.log(np.maximum(p, 0.0)), log_prior_, alpha)
    z = z - np.max(z, axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


MIN_CLASS_COUNT = 5
"""A class with fewer val samples than this gets a warning: its accuracy moves in steps of 20 % or more."""


def rerank_row(row: dict, lp: dict[str, float], alpha: float) -> dict:
    """One preds.jsonl row under the rule (``lp``: behavior -> log prior); the row's fields are recomputed."""
    ranked = row.get("ranked") or []
    if row.get("method", "score") != "score" or len(ranked) < (row.get("n_candidates") or len(ranked)):
        raise PriorCorrectionError(
            f"row {row.get('id')!r}: the prior correction needs the full ranked candidate list with probabilities "
            "(`behaviorlm predict --top-k 0`, method score)"
        )
    if alpha == 0:
        return row
    names = [r["behavior"] for r in ranked]
    p = corrected_probs(np.array([r["prob"] for r in ranked]), np.array([lp[b] for b in names]), alpha)
    order = np.argsort(-p, kind="stable")
    new = [{"behavior": names[i], "prob": float(p[i])} for i in order]
    label = row["label"]
    t = names.index(label) if label in names else None
    return {
        **row,
        "prediction": new[0]["behavior"],
        "correct": new[0]["behavior"] == label,
        "ranked": new,
        "true_prob": float(p[t]) if t is not None else None,
        "true_rank": int((p > p[t]).sum()) + 1 if t is not None else None,
        "alpha": alpha,
    }


def rerank_rows(rows: Sequence[dict], frequency: dict[str, float], alpha: float) -> list[dict]:
    """Every row re-ranked under ``alpha`` with the training prior ``frequency`` (stats.json's)."""
    a = check_alpha(alpha)
    behaviors = sorted({r["behavior"] for row in rows for r in row.get("ranked") or []})
    lp = dict(zip(behaviors, log_prior(frequency, behaviors), strict=True))
    return [rerank_row(row, lp, a) for row in rows]


@dataclass
class AlphaChoice:
    """What ``auto`` chose, and the evidence behind it (written into the results)."""

    alpha: float
    objective: str
    head_floor: float | None
    trials: list[dict] = field(default_factory=list)
    val_counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _class_means(rows: Sequence[dict], categories: dict[str, str]) -> dict:
    support: dict[str, int] = {}
    hits: dict[str, int] = {}
    for r in rows:
        support[r["label"]] = support.get(r["label"], 0) + 1
        hits[r["label"]] = hits.get(r["label"], 0) + int(r["prediction"] == r["label"])
    recall = {c: hits[c] / n for c, n in support.items()}
    out = {"acc_avg": float(np.mean(list(recall.values()))), "accuracy": sum(hits.values()) / len(rows)}
    for cat in ("head", "medium", "tail"):
        vals = [v for c, v in recall.items() if categories.get(c) == cat]
        out[f"acc_{cat}"] = float(np.mean(vals)) if vals else None
    return out


def choose_alpha(
    val_rows: Sequence[dict],
    frequency: dict[str, float],
    categories: dict[str, str],
    *,
    grid: Sequence[float] = DEFAULT_ALPHA_GRID,
    head_floor: float | None = None,
    min_count: int = MIN_CLASS_COUNT,
) -> AlphaChoice:
    """``auto``: the alpha of ``grid`` with the best mean per-class accuracy on ``val_rows`` (ties: the smaller
    alpha), or with ``head_floor`` the best one whose head accuracy stays >= the floor (0 when none does)."""
    if not val_rows:
        raise PriorCorrectionError("prior_correction auto: no val predictions to choose alpha on; score the val split")
    trials = []
    for a in sorted({check_alpha(a, source="alpha grid") for a in grid}):
        m = _class_means(rerank_rows(val_rows, frequency, a), categories)
        trials.append({"alpha": a, **m})
    counts: dict[str, int] = {}
    for r in val_rows:
        counts[r["label"]] = counts.get(r["label"], 0) + 1
    warnings = []
    small = sorted(c for c, n in counts.items() if n < min_count)
    if small:
        warnings.append(
            f"{len(small)} of {len(counts)} classes in val have fewer than {min_count} samples ({', '.join(small[:6])}"
            f"{' …' if len(small) > 6 else ''}); their accuracies are noise, so the chosen alpha is uncertain"
        )
    unseen = sorted(set(categories) - set(counts))
    if unseen:
        warnings.append(f"{len(unseen)} behaviors have no val sample at all and do not count in the choice")
    ok = [t for t in trials if head_floor is None or (t["acc_head"] is not None and t["acc_head"] >= head_floor)]
    if not ok:
        warnings.append(f"no alpha keeps head accuracy >= {head_floor}; alpha 0 (the plain argmax) is kept")
        best = trials[0] if trials[0]["alpha"] == 0 else {"alpha": 0.0}
    else:
        best = max(ok, key=lambda t: (t["acc_avg"], -t["alpha"]))
    objective = "acc_avg" if head_floor is None else f"acc_avg with head >= {head_floor}"
    return AlphaChoice(float(best["alpha"]), objective, head_floor, trials, dict(sorted(counts.items())), warnings)


def choice_text(choice: AlphaChoice) -> str:
    """Terminal lines: the trials, the counts per class and the warnings."""
    lines = [f"prior correction auto ({choice.objective}): alpha = {choice.alpha:g}"]
    for t in choice.trials:
        cells = "  ".join(
            f"{k}={'n/a' if t[k] is None else f'{t[k]:.3f}'}" for k in ("accuracy", "acc_avg", "acc_head", "acc_tail")
        )
        lines.append(f"  alpha={t['alpha']:<4g} {cells}{'  <- chosen' if t['alpha'] == choice.alpha else ''}")
    lines.append("  val samples per class: " + ", ".join(f"{c}: {n}" for c, n in choice.val_counts.items()))
    lines += [f"  warning: {w}" for w in choice.warnings]
    return "\n".join(lines)


def apply_prior_correction(
    preds: list[dict],
    stats: DatasetStats,
    rule: PriorCorrectionArguments,
    *,
    val_preds: list[dict] | None = None,
    log: Callable[[str], None] = print,
) -> tuple[list[dict], dict]:
    """``preds`` re-ranked under ``score - alpha * log prior`` (prior: stats.json's train frequencies) and
    what goes into the results: ``{"alpha"}`` plus, for ``auto``, the choice made on ``val_preds``."""
    alpha = rule.setting
    info: dict = {}
    if alpha == AUTO:
        if not val_preds:
            raise PriorCorrectionError(
                f"prior_correction auto chooses alpha on {rule.choose_on} predictions; score the {rule.choose_on} "
                "split (with --top-k 0) and pass them (--val-preds), or give a number"
            )
        choice = choose_alpha(
            val_preds, stats.frequency, stats.head_medium_tail, grid=rule.alpha_grid, head_floor=rule.head_floor
        )
        log(choice_text(choice))
        alpha, info["alpha_choice"] = choice.alpha, choice.to_dict()
    return rerank_rows(preds, stats.frequency, alpha), {**info, "alpha": float(alpha)}
