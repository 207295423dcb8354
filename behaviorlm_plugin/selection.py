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
paper's footnote).  Strategies reproduce the paper's ablations: ``dds_cds`` (BehaviorLM),
``dds`` (no CDS: tier 1 = every mispredicted sample) and ``uniform`` (no DDS: a random ``k``
per behavior, nothing scored).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Strategy = Literal["dds_cds", "dds", "uniform"]
TIER_NAMES = {1: "mispredicted_same_category", 2: "mispredicted", 3: "correct_low_prob", 4: "unscored"}


@dataclass
class SelectionArguments:
    r"""Arguments of ``behaviorlm select`` (and the pipeline's ``selection`` block).

    What to pick: k, strategy, seed
    How much to score: chunk_size, max_scored_per_class
    Scoring: batch_size, template
    """

    k: int = field(default=20, metadata={"help": "Samples per behavior (paper: ~20)."})
    strategy: Strategy = field(
        default="dds_cds", metadata={"help": "dds_cds (BehaviorLM), dds (w/o CDS) or uniform (w/o DDS)."}
    )
    seed: int = field(default=42, metadata={"help": "Seed of the pool order (same seed, same selection)."})
    chunk_size: int = field(
        default=8, metadata={"help": "Samples scored per behavior per round before checking whether it has enough."}
    )
    max_scored_per_class: int | None = field(
        default=200, metadata={"help": "Stop scoring a behavior after this many samples (None = no limit)."}
    )
    batch_size: int = field(default=4, metadata={"help": "Scorer batch size."})

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if self.max_scored_per_class is not None and self.max_scored_per_class < 1:
            raise ValueError("max_scored_per_class must be >= 1 or None")
        if self.strategy not in ("dds_cds", "dds", "uniform"):
            raise ValueError(f"strategy must be dds_cds, dds or uniform, got {self.strategy!r}")


@dataclass
class Scored:
    """The stage-1 model's verdict on one pool sample."""

    predicted: str
    true_prob: float


def tier_of(label: str, scored: Scored | None, anchor_tail: dict[str, str], strategy: Strategy) -> int:
    if scored is None:
        return 4
    if scored.predicted == label:
        return 3
    if strategy == "dds" or anchor_tail.get(scored.predicted) == anchor_tail.get(label):
        return 1
    return 2


def _enough(label: str, idxs: list[int], scores: dict[int, Scored], anchor_tail, strategy, k: int) -> bool:
    """True once ``k`` scored samples of ``label`` are in tier 1: scoring more cannot improve the pick."""
    return sum(1 for i in idxs if tier_of(label, scores[i], anchor_tail, strategy) == 1) >= k


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
    scores: dict[int, Scored] = {}
    if args.strategy != "uniform":
        cursor = dict.fromkeys(by_class, 0)
        limit = args.max_scored_per_class or 10**12
        while True:
            todo: list[int] = []
            for label, idxs in by_class.items():
                done = cursor[label]
                if done >= min(len(idxs), limit) or _enough(
                    label, idxs[:done], scores, anchor_tail, args.strategy, args.k
                ):
                    continue
                take = idxs[done : min(done + args.chunk_size, len(idxs), limit)]
                cursor[label] = done + len(take)
                todo.extend(take)
            if not todo:
                break
            for i, s in zip(todo, score_fn(todo), strict=True):
                scores[i] = s
            if progress is not None:
                progress(len(todo))

    picks, per_class = [], {}
    for label in sorted(by_class):
        idxs = by_class[label]
        if args.strategy == "uniform":
            chosen = [(4, 0.0, i) for i in idxs[: args.k]]
        else:
            ranked = sorted(
                (
                    tier_of(label, scores.get(i), anchor_tail, args.strategy),
                    scores[i].true_prob if i in scores else 1.0,
                    pos,
                    i,
                )
                for pos, i in enumerate(idxs)
            )
            chosen = [(t, p, i) for t, p, _, i in ranked[: args.k]]
        counts: dict[str, int] = {}
        for tier, _, i in chosen:
            name = "uniform" if args.strategy == "uniform" else TIER_NAMES[tier]
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


# ----------------------------------------------------------------------------- I/O edge
def run_selection(
    *,
    model: str,
    dataset_dir: str,
    name: str,
    args: SelectionArguments,
    adapter: str | None = None,
    template: str | None = None,
    output_name: str | None = None,
    out_json: str | None = None,
    out_path: str | None = None,
    device: str = "auto",
) -> dict:
    """Score a pool from ``NAME_train_all`` with the stage-1 model, pick, write and register.

    Writes ``DIR/NAME/<output>.jsonl`` (+ ``.meta.jsonl``), registers it as ``output_name``
    (default ``NAME_btuning``) in ``DIR/dataset_info.json`` and writes ``selection.json``
    (every pick with its id, label, predicted label, true-label probability and tier).
    With ``out_path`` the picks go to that file (+ ``.meta.jsonl``) and nothing is registered:
    the benchmark keeps its datasets in its own cache.
    """
    import json
    from pathlib import Path

    from tqdm.auto import tqdm

    from .evaluation import load_split
    from .fileio import atomic_write_json, atomic_write_jsonl
    from .registry import make_entry, register_datasets

    base = Path(dataset_dir) / name
    stats_path = base / "stats.json"
    if not stats_path.is_file():
        raise FileNotFoundError(f"{stats_path}: not found; run `behaviorlm prepare --name {name}` first")
    stats = json.loads(stats_path.read_text())
    anchor_tail = {b: v["anchor_tail"] for b, v in stats["behaviors"].items()}
    recs, metas = load_split(base / "train_all.jsonl")
    labels = [m["label"] for m in metas]

    scorer = None
    if args.strategy != "uniform":
        from .scoring import CandidateScorer

        scorer = CandidateScorer.from_pretrained(
            model, adapter, template=template, batch_size=args.batch_size, device=device, show_progress=False
        )
    limit = args.max_scored_per_class or 10**12
    counts = {b: labels.count(b) for b in set(labels)}
    bar = tqdm(
        total=sum(min(c, limit) for c in counts.values()) if scorer else 0, desc="selection: scoring", unit="sample"
    )

    def score_fn(idxs: list[int]) -> list[Scored]:
        preds = scorer.predict(
            [(recs[i].get("system"), recs[i]["instruction"]) for i in idxs],
            [metas[i]["candidates"] for i in idxs],
            labels=[labels[i] for i in idxs],
        )
        return [Scored(predicted=p.label, true_prob=float(p.true_prob or 0.0)) for p in preds]

    picks, report = select(labels, anchor_tail, args, score_fn, progress=bar.update)
    bar.close()
    order = np.random.default_rng(args.seed + 1).permutation(len(picks))  # mix behaviors within the file
    picks = [picks[i] for i in order]
    output_name = output_name or f"{name}_btuning"
    file_stem = output_name.removeprefix(f"{name}_") if output_name.startswith(f"{name}_") else output_name
    rel = out_path or f"{name}/{file_stem}.jsonl"
    data_path = Path(out_path) if out_path else Path(dataset_dir) / rel
    atomic_write_jsonl(data_path, [recs[p["pool_index"]] for p in picks])
    atomic_write_jsonl(data_path.with_suffix(".meta.jsonl"), [metas[p["pool_index"]] for p in picks])
    if out_path is None:
        register_datasets(dataset_dir=dataset_dir, entries={output_name: make_entry(rel, "alpaca")})
    for p in picks:
        p["id"] = recs[p["pool_index"]]["id"]
    report.update(
        model=model,
        adapter=adapter,
        dataset=output_name,
        file=rel,
        arguments=vars(args),
        picks=[{k: p[k] for k in ("id", "label", "predicted", "true_prob", "tier")} for p in picks],
    )
    atomic_write_json(out_json or data_path.with_name(f"{file_stem}.selection.json"), report)
    return report
