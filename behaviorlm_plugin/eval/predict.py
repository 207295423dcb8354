"""``behaviorlm predict``: rank every candidate of every sample with the exact scorer (or parse generations).

Reads a prepared split (alpaca JSONL + its ``.meta.jsonl`` sidecar) and writes one row per
sample (:mod:`behaviorlm_plugin.eval.rows`) plus ``*.run.json`` (timings and arguments).

Under ``torchrun`` (``WORLD_SIZE`` > 1) prediction is data-parallel: rank ``r`` scores
samples ``r, r+W, …`` and rank 0 merges the parts in the original order.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

from behaviorlm_plugin.data.dataset import DatasetStats, load_split, meta_path_of
from behaviorlm_plugin.eval.prior_correction import apply_prior_correction
from behaviorlm_plugin.eval.rows import prediction_row
from behaviorlm_plugin.extras.fileio import atomic_write_json, atomic_write_jsonl, read_jsonl
from behaviorlm_plugin.hparams.eval_args import PredictArguments
from behaviorlm_plugin.model.default_model import resolve_template

if TYPE_CHECKING:
    from behaviorlm_plugin.model.scoring import CandidateScorer

__all__ = ["PredictArguments", "load_scorer", "predict", "rank_and_world"]


def rank_and_world() -> tuple[int, int]:
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def load_scorer(args: PredictArguments, *, show_progress: bool = True) -> CandidateScorer:
    """The exact scorer of ``args`` (model, adapter, template and speed settings)."""
    from behaviorlm_plugin.model.scoring import CandidateScorer  # deferred: torch (evaluate --preds needs none)

    return CandidateScorer.from_pretrained(
        args.model,
        args.adapter,
        batch_size=args.batch_size,
        max_length=args.max_length,
        device=args.device,
        template=resolve_template(args.model, args.template),
        show_progress=show_progress,
    )


def predict(
    args: PredictArguments,
    *,
    scorer: CandidateScorer | None = None,
    others: Sequence[tuple[str | Path, str | None]] = (),
) -> list[dict] | None:
    """Write ``args.out``; returns the rows (on rank 0; ``None`` on other ranks).

    ``scorer`` reuses a loaded scorer (one process). A :class:`~behaviorlm_plugin.model.twin.TwinModel` scorer
    scores several models in the same pass: ``args.out`` gets its first variant's rows, and ``others`` gives,
    for each further variant in order, where its rows go and its adapter (for the run record; ``None`` for the
    base model).
    """
    recs, metas = load_split(args.data, args.max_samples, args.max_per_class, args.seed)
    rank, world = rank_and_world()
    if scorer is not None:
        if world > 1 or args.method != "score":
            raise ValueError("a shared scorer serves one process and method=score only")
        outs = [(Path(args.out), args.adapter)] + [(Path(o), a) for o, a in others]
        if len(outs) != len(scorer.variants):
            raise ValueError(f"a scorer of variants {scorer.variants} needs {len(scorer.variants) - 1} other outputs")
        return _predict_variants(scorer, args, recs, metas, outs)
    if world > 1:
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    mine = list(range(rank, len(recs), world))
    device = args.device
    if world > 1 and device in ("auto", "cuda"):
        import torch

        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available() else "cpu"
    scorer = load_scorer(replace(args, device=device), show_progress=rank == 0)
    prompts = [(recs[i].get("system"), recs[i]["instruction"]) for i in mine]
    cands = [metas[i]["candidates"] for i in mine]
    labels = [metas[i]["label"] for i in mine]
    t0 = time.perf_counter()
    rows = []
    if args.method == "score":
        preds = scorer.predict(prompts, cands, labels=labels, ids=[recs[i]["id"] for i in mine], k=_keep(args))
        rows = _score_rows(preds, [metas[i] for i in mine])
    else:
        gens = scorer.generate(prompts, cands, max_new_tokens=args.max_new_tokens)
        for i, g in zip(mine, gens, strict=True):
            ranked = [{"behavior": g.label, "prob": 1.0}] if g.label else []
            row = prediction_row(metas[i], g.label, ranked, true_prob=None, true_rank=None, method="generate")
            row.update(raw_output=g.raw, valid=g.label is not None)
            rows.append(row)
    seconds = time.perf_counter() - t0
    out = Path(args.out)
    if world == 1:
        rows = _under_rule(rows, args)
        atomic_write_jsonl(out, rows)
        _write_run_info(out, args, len(rows), seconds, world)
        return rows
    import torch.distributed as dist

    part = out.with_name(f"{out.name}.rank{rank}")
    atomic_write_jsonl(part, rows)
    dist.barrier()
    merged = None
    if rank == 0:
        parts = [read_jsonl(out.with_name(f"{out.name}.rank{r}")) for r in range(world)]
        merged = _under_rule([parts[i % world][i // world] for i in range(len(recs))], args)
        atomic_write_jsonl(out, merged)
        for r in range(world):
            out.with_name(f"{out.name}.rank{r}").unlink()
        _write_run_info(out, args, len(merged), seconds, world)
    dist.barrier()
    dist.destroy_process_group()
    return merged


def _keep(args: PredictArguments) -> int:
    return args.top_k if args.top_k and not args.prior_correction.active else 10**9  # the rule re-ranks them all


def _score_rows(preds, metas: list[dict]) -> list[dict]:
    rows = []
    for meta, p in zip(metas, preds, strict=True):
        ranked = [{"behavior": b, "prob": pr} for b, pr in p.top_k]
        rows.append(prediction_row(meta, p.label, ranked, true_prob=p.true_prob, true_rank=p.true_rank, method="score"))
    return rows


def _predict_variants(scorer, args: PredictArguments, recs, metas, outs: list[tuple[Path, str | None]]):
    """One pass of ``scorer`` over the split; variant ``v``'s rows go to ``outs[v]`` (path, adapter); returns the
    first's."""
    t0 = time.perf_counter()
    prompts = [(r.get("system"), r["instruction"]) for r in recs]
    per_variant = scorer.predict_variants(
        prompts, [m["candidates"] for m in metas], labels=[m["label"] for m in metas], ids=[r["id"] for r in recs],
        k=_keep(args),
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    first = None
    for (out, adapter), preds in zip(outs, per_variant, strict=True):
        rows = _under_rule(_score_rows(preds, metas), args)
        first = rows if first is None else first
        atomic_write_jsonl(out, rows)
        info_args = replace(args, out=str(out), adapter=adapter)
        shared = getattr(scorer.model, "split", None)
        _write_run_info(out, info_args, len(rows), seconds, 1, shared=shared, models=len(outs))
    return first


def _under_rule(rows: list[dict], args: PredictArguments) -> list[dict]:
    """The rows under ``--prior-correction`` (a no-op at 0), cut to ``--top-k`` afterwards."""
    if not args.prior_correction.active:
        return rows
    stats = DatasetStats.read(args.stats or meta_path_of(Path(args.data)).parent / "stats.json")
    val = read_jsonl(args.val_preds) if args.val_preds else None
    rows, _ = apply_prior_correction(rows, stats, args.prior_correction, val_preds=val)
    return [{**r, "ranked": r["ranked"][: args.top_k]} if args.top_k else r for r in rows]


def _write_run_info(
    out: Path, args: PredictArguments, n: int, seconds: float, world: int, shared: int | None = None, models: int = 1
) -> None:
    info = {
        "samples": n,
        "seconds": round(seconds, 3),
        "samples_per_second": n / seconds if seconds else None,
        "processes": world,
        "arguments": asdict(args),
    }
    if shared is not None:  # a TwinModel pass: every model's rows, one time
        info["shared_pass"] = {"layers_run_once": shared, "models": models, "seconds_are_for_all_models": True}
    atomic_write_json(out.with_name(out.name.removesuffix(".jsonl") + ".run.json"), info)
