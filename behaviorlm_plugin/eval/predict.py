"""``behaviorlm predict``: rank every candidate of every sample with the exact scorer (or parse generations).

Reads a prepared split (alpaca JSONL + its ``.meta.jsonl`` sidecar) and writes one row per
sample (:mod:`behaviorlm_plugin.eval.rows`) plus ``*.run.json`` (timings and arguments).

Under ``torchrun`` (``WORLD_SIZE`` > 1) prediction is data-parallel: rank ``r`` scores
samples ``r, r+W, …`` and rank 0 merges the parts in the original order.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path

from behaviorlm_plugin.data.dataset import load_split
from behaviorlm_plugin.eval.rows import prediction_row
from behaviorlm_plugin.extras.fileio import atomic_write_json, atomic_write_jsonl, read_jsonl
from behaviorlm_plugin.hparams.eval_args import PredictArguments

__all__ = ["PredictArguments", "predict"]


def _dist() -> tuple[int, int]:
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def predict(args: PredictArguments) -> list[dict] | None:
    """Write ``args.out``; returns the rows (on rank 0; ``None`` on other ranks)."""
    from behaviorlm_plugin.model.default_model import resolve_template
    from behaviorlm_plugin.model.scoring import CandidateScorer

    recs, metas = load_split(args.data, args.max_samples, args.max_per_class, args.seed)
    rank, world = _dist()
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
    scorer = CandidateScorer.from_pretrained(
        args.model,
        args.adapter,
        batch_size=args.batch_size,
        max_length=args.max_length,
        device=device,
        template=resolve_template(args.model, args.template),
        show_progress=rank == 0,
    )
    prompts = [(recs[i].get("system"), recs[i]["instruction"]) for i in mine]
    cands = [metas[i]["candidates"] for i in mine]
    labels = [metas[i]["label"] for i in mine]
    t0 = time.perf_counter()
    rows = []
    if args.method == "score":
        k = args.top_k if args.top_k and args.prior_correction == 0 else 10**9  # the rule re-ranks them all
        preds = scorer.predict(prompts, cands, labels=labels, ids=[recs[i]["id"] for i in mine], k=k)
        for i, p in zip(mine, preds, strict=True):
            ranked = [{"behavior": b, "prob": pr} for b, pr in p.top_k]
            rows.append(
                prediction_row(metas[i], p.label, ranked, true_prob=p.true_prob, true_rank=p.true_rank, method="score")
            )
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


def _under_rule(rows: list[dict], args: PredictArguments) -> list[dict]:
    """The rows under ``--prior-correction`` (a no-op at 0), cut to ``--top-k`` afterwards."""
    if args.prior_correction == 0:
        return rows
    from behaviorlm_plugin.data.dataset import DatasetStats, meta_path_of
    from behaviorlm_plugin.eval.evaluate import apply_prior_correction

    stats = DatasetStats.read(args.stats or meta_path_of(Path(args.data)).parent / "stats.json")
    val = read_jsonl(args.val_preds) if args.val_preds else None
    rows, _ = apply_prior_correction(rows, stats, args.prior_correction, val_preds=val, head_floor=args.head_floor)
    return [{**r, "ranked": r["ranked"][: args.top_k]} if args.top_k else r for r in rows]


def _write_run_info(out: Path, args: PredictArguments, n: int, seconds: float, world: int) -> None:
    info = {
        "samples": n,
        "seconds": round(seconds, 3),
        "samples_per_second": n / seconds if seconds else None,
        "processes": world,
        "arguments": asdict(args),
    }
    atomic_write_json(out.with_name(out.name.removesuffix(".jsonl") + ".run.json"), info)
