"""Difficulty-based data selection for B-Tuning (the paper's DDS + CDS).

For every behavior we want ``k`` training samples the stage-1 (A-Tuning) model finds hard:

* tier 1 -- mispredicted, and the predicted label has the same anchor/tail category as the
  truth (contrastive selection, CDS: an anchor confused with another anchor is harder to
  tell apart than an anchor confused with a tail behavior);
* tier 2 -- other mispredicted samples (difficulty-based selection, DDS);
* tier 3 -- correct ones, lowest true-label probability first;
* tier 4 -- whatever is left (not scored), when a behavior has too few scored samples.

Within tiers 1-3 lower true-label probability comes first.  Scoring a behavior stops as
soon as it has ``k`` samples in its best possible tier, so only a pool is scored (the
paper's footnote).  The strategies (``dds_cds``, ``dds``, ``uniform`` and any you register)
live in :mod:`behaviorlm_plugin.tuning.strategies`.  This module is pure: scoring comes in
as a function, and :mod:`behaviorlm_plugin.tuning.select_run` does the I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from behaviorlm_plugin.hparams.selection_args import SelectionArguments
from behaviorlm_plugin.tuning.strategies import TIER_NAMES, get_strategy

__all__ = ["Scored", "SelectionArguments", "select", "tier_of"]


@dataclass
class Scored:
    """The stage-1 model's verdict on one pool sample."""

    predicted: str
    true_prob: float


def tier_of(label: str, scored: Scored | None, anchor_tail: dict[str, str], strategy: str) -> int:
    if scored is None:
        return 4
    if scored.predicted == label:
        return 3
    return get_strategy(strategy).miss_tier(label, scored.predicted, anchor_tail)


def _enough(label: str, idxs: list[int], scores: dict[int, Scored], anchor_tail, strategy, k: int) -> bool:
    """True once ``k`` scored samples of ``label`` are in tier 1: scoring more cannot improve the pick."""
    return sum(1 for i in idxs if tier_of(label, scores[i], anchor_tail, strategy) == 1) >= k


def _score_pool(by_class, anchor_tail, args: SelectionArguments, score_fn, progress) -> dict[int, Scored]:
    """Score each behavior's pool in chunks until it has ``k`` tier-1 samples or runs out."""
    scores: dict[int, Scored] = {}
    cursor = dict.fromkeys(by_class, 0)
    limit = args.max_scored_per_class or 10**12
    while True:
        todo: list[int] = []
        for label, idxs in by_class.items():
            done = cursor[label]
            if done >= min(len(idxs), limit) or _enough(label, idxs[:done], scores, anchor_tail, args.strategy, args.k):
                continue
            take = idxs[done : min(done + args.chunk_size, len(idxs), limit)]
            cursor[label] = done + len(take)
            todo.extend(take)
        if not todo:
            return scores
        for i, s in zip(todo, score_fn(todo), strict=True):
            scores[i] = s
        if progress is not None:
            progress(len(todo))


def _pick_class(label, idxs, scores, anchor_tail, args: SelectionArguments) -> list[tuple[str, int]]:
    """(tier name, pool index) of the ``k`` picks of one behavior."""
    if not get_strategy(args.strategy).scores:
        return [(args.strategy, i) for i in idxs[: args.k]]
    ranked = sorted(
        (
            tier_of(label, scores.get(i), anchor_tail, args.strategy),
            scores[i].true_prob if i in scores else 1.0,
            pos,
            i,
        )
        for pos, i in enumerate(idxs)
    )
    return [(TIER_NAMES[t], i) for t, _, _, i in ranked[: args.k]]


def select(
    labels: Sequence[str],
    anchor_tail: dict[str, str],
    args: SelectionArguments,
    score_fn: Callable[[list[int]], list[Scored]],
    progress: Callable[[int], None] | None = None,
) -> tuple[list[dict], dict]:
    """Pick ``args.k`` samples per behavior from a pool.

    ``labels[i]`` is the true label of pool sample ``i``; ``score_fn(indices)`` scores pool
    samples with the stage-1 model.  Returns (picks, report): each pick is a dict with the
    pool index, label, tier and the stage-1 verdict; the report has per-behavior tier counts
    and the number of samples scored.
    """
    rng = np.random.default_rng(args.seed)
    by_class: dict[str, list[int]] = {}
    for i in rng.permutation(len(labels)):
        by_class.setdefault(labels[int(i)], []).append(int(i))
    scores = _score_pool(by_class, anchor_tail, args, score_fn, progress) if get_strategy(args.strategy).scores else {}
    picks, per_class = [], {}
    for label in sorted(by_class):
        idxs = by_class[label]
        chosen = _pick_class(label, idxs, scores, anchor_tail, args)
        counts: dict[str, int] = {}
        for name, i in chosen:
            counts[name] = counts.get(name, 0) + 1
            s = scores.get(i)
            picks.append(
                {
                    "pool_index": i,
                    "label": label,
                    "tier": name,
                    "predicted": s.predicted if s else None,
                    "true_prob": s.true_prob if s else None,
                }
            )
        per_class[label] = {
            "available": len(idxs),
            "scored": sum(1 for i in idxs if i in scores),
            "picked": len(chosen),
            "short_by": max(0, args.k - len(chosen)),
            "tiers": counts,
        }
    report = {
        "strategy": args.strategy,
        "k": args.k,
        "scored_total": len(scores),
        "pool_size": len(labels),
        "picked_total": len(picks),
        "per_behavior": per_class,
    }
    return picks, report
