"""The step layer's steps (:mod:`behaviorlm_plugin.runs.steps`) under the bench's step cache.

Each function keys its step by the settings that decide its output (never a path), runs it once per key
and registers any training data it writes in the bench's own ``dataset_info.json``:

    mix      anchor samples + λ auxiliary conversations (the A-Tuning data)
    subset   a seeded random subset of a prepared split (full fine-tuning, reverse curriculum)
    train    one LoRA stage, optionally continuing an earlier adapter
    select   DDS/CDS (or any registered strategy) scored by a stage-1 model
    evaluate candidate scoring on the capped evaluation splits + metrics, at plain argmax
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from behaviorlm_plugin.eval.metrics import SUMMARY_KEYS
from behaviorlm_plugin.extras.hashing import file_hash
from behaviorlm_plugin.hparams.prior_correction_args import PriorCorrectionArguments
from behaviorlm_plugin.hparams.selection_args import SelectionArguments
from behaviorlm_plugin.runs import steps
from behaviorlm_plugin.runs.bench.cache import Step
from behaviorlm_plugin.runs.bench.context import BenchContext
from behaviorlm_plugin.runs.steps import selection_record

RUN_OWNED_PATHS = ("output_dir", "dataset_dir", "dataset", "adapter_name_or_path", "eval_dataset")
"""Arguments a train step's key leaves out: where things live, never what is trained."""


def _dataset_step(ctx: BenchContext, kind: str, spec: dict, write, label: str, formatting: str = "alpaca") -> Step:
    """A cached step whose output is a training dataset (``write(path) -> info``), registered for LLaMA-Factory."""
    step = ctx.cache.run(kind, {"data": ctx.fp, **spec}, lambda out: write(out / "data.jsonl"), label)
    ctx.register(f"bench_{step.key}", step.dir / "data.jsonl", formatting)
    return step


def mix(ctx: BenchContext, anchors: int | None, aux_ratio: float, seed: int) -> Step:
    def write(path: Path) -> dict:
        return steps.mix(ctx.data, path, anchors=anchors, aux_ratio=aux_ratio, seed=seed)

    spec = {"anchors": anchors, "aux_ratio": aux_ratio, "seed": seed}
    return _dataset_step(ctx, "mix", spec, write, f"(anchors={anchors}, λ={aux_ratio}, seed={seed})", "sharegpt")


def subset(ctx: BenchContext, split: str, n: int, seed: int, categories: tuple[str, ...] | None = None) -> Step:
    """``n`` random samples of a split (see :func:`behaviorlm_plugin.runs.steps.subset`)."""

    def write(path: Path) -> dict:
        return steps.subset(ctx.data, path, split=split, n=n, seed=seed, categories=categories)

    spec = {"split": split, "n": n, "seed": seed}
    if categories is not None:
        spec["categories"] = list(categories)
    label = f"({split}, n={n}{', ' + '+'.join(categories) if categories else ''})"
    return _dataset_step(ctx, "subset", spec, write, label)


def balanced_subset(ctx: BenchContext, split: str, n: int, seed: int) -> Step:
    """``n`` samples of a split, equal counts per behavior (:func:`behaviorlm_plugin.runs.steps.balanced_subset`)."""

    def write(path: Path) -> dict:
        return steps.balanced_subset(ctx.data, path, split=split, n=n, seed=seed)

    spec = {"split": split, "n": n, "seed": seed}
    return _dataset_step(ctx, "balanced_subset", spec, write, f"({split}, n={n}, equal per behavior)")


def datasets(data: Step | list[Step]) -> list[Step]:
    return data if isinstance(data, list) else [data]


def stage_arguments(
    ctx: BenchContext,
    stage: str,
    data: Step | list[Step],
    out: str,
    init: Step | None,
    seed: int,
    lr: float | None = None,
) -> dict:
    return steps.train_config(
        ctx.training,
        stage,
        dataset=",".join(f"bench_{d.key}" for d in datasets(data)),  # several: LLaMA-Factory concatenates them
        output_dir=out,
        init=str(init.dir) if init else None,
        seed=seed,
        learning_rate=lr,
    )


def train(
    ctx: BenchContext, stage: str, data: Step | list[Step], init: Step | None, seed: int, lr: float | None = None
) -> Step:
    """One LoRA stage on ``data`` (one step's dataset, or several trained on together); ``lr`` (an lr_search winner
    or trial) replaces the recipe's learning rate."""
    parts = datasets(data)
    n = sum(d.info["n"] for d in parts)

    def build(out: Path) -> dict:
        args = stage_arguments(ctx, stage, data, str(out), init, seed, lr)
        info = steps.train(
            args,
            out / "train.yaml",
            clean=False,
            reuse=ctx.training.frozen_reuse,
            stock_forward=ctx.training.stock_forward,
        )
        return {"launcher": info["launcher"], "samples": n}

    # The key holds the arguments with placeholder paths: the cache never depends on where it lives.
    recipe = stage_arguments(ctx, stage, data, "<step dir>", init, seed, lr)
    for k in RUN_OWNED_PATHS:
        recipe.pop(k, None)
    keys = parts[0].key if len(parts) == 1 else [d.key for d in parts]  # one dataset: the key it always had
    spec = {**ctx.model_id, "stage": stage, "recipe": recipe, "data": keys, "init": init.key if init else None}
    if ctx.training.stock_forward:  # a model of its own: the check compares it with the usual one
        spec["stock_forward"] = True
    return ctx.cache.run("train", spec, build, f"({stage}, {n} samples, seed={seed})")


def select(ctx: BenchContext, model: Step | None, selection: SelectionArguments, seed: int) -> Step:
    args = replace(selection, seed=seed)

    def build(out: Path) -> dict:
        report = steps.select(
            ctx.model,
            str(model.dir) if model else None,
            ctx.data,
            args,
            out_path=out / "data.jsonl",
            out_json=out / "selection.json",
        )
        return {"n": report["picked_total"], "scored": report["scored_total"], "pool": report["pool_size"]}

    spec = {**ctx.model_id, "data": ctx.fp, "model": model.key if model else None, "arguments": selection_record(args)}
    if args.pool != "train_all":
        spec["pool_content"] = file_hash(ctx.data.path(args.pool))
    label = f"({args.strategy}, k={args.k}, from {'base' if model is None else model.key})"
    step = ctx.cache.run("select", spec, build, label)
    ctx.register(f"bench_{step.key}", step.dir / "data.jsonl", "alpaca")
    return step


def _evaluation(ctx: BenchContext, splits: tuple[str, ...] | None = None):
    """The suite's evaluation at plain argmax (a row's prior correction re-ranks its plain scores); ``splits``: only
    those of its splits (a learning-rate trial is read on one)."""
    ev = replace(ctx.suite.evaluation, prior_correction=PriorCorrectionArguments(alpha=0.0))
    return ev if splits is None else replace(ev, splits=[s for s in ev.splits if s in splits])


def _eval_spec(ctx: BenchContext, model: Step | None, splits: tuple[str, ...] | None = None) -> dict:
    ev = _evaluation(ctx, splits)
    return {**ctx.model_id, "data": ctx.fp, "model": model.key if model else None, "caps": ev.caps(), "seed": ev.seed}


def _eval_info(metrics: dict[str, dict]) -> dict:
    return {"metrics": {split: {k: m.get(k) for k in SUMMARY_KEYS} for split, m in metrics.items()}}


def evaluate(ctx: BenchContext, model: Step | None) -> Step:
    """The plain scores (alpha 0) of every evaluation split; a row's prior correction re-ranks them."""

    def build(out: Path) -> dict:
        metrics, _ = steps.evaluate(ctx.model, str(model.dir) if model else None, ctx.data, _evaluation(ctx), out)
        return _eval_info(metrics)

    return ctx.cache.run("eval", _eval_spec(ctx, model), build, f"({'base' if model is None else model.key})")


def evaluate_together(
    ctx: BenchContext, models: list[Step | None], splits: tuple[str, ...] | None = None
) -> list[Step]:
    """:func:`evaluate` of each of ``models`` (``None``: the base model), the ones not yet cached scored in passes of
    the suite's ``score_together`` that run the layers their adapters leave alone once (``model/twin.py``): each
    entry is the one :func:`evaluate` would make, with the same key, so a later :func:`evaluate` finds it.
    ``splits``: only those splits (an entry of its own, which :func:`evaluate` does not read). Returns one step per
    model asked for, in that order."""
    asked = [None if m is None else m.key for m in models]
    unique = dict(zip(asked, models, strict=True))  # each model once
    keys, group = list(unique), ctx.suite.score_together
    done: dict[str | None, Step] = {}
    for start in range(0, len(keys), group):
        chunk = [unique[k] for k in keys[start : start + group]]
        done.update(zip(keys[start : start + group], _evaluate_pass(ctx, chunk, splits), strict=True))
    return [done[k] for k in asked]


def _evaluate_pass(ctx: BenchContext, models: list[Step | None], splits: tuple[str, ...] | None) -> list[Step]:
    """One shared scoring pass over ``models`` (distinct), for the entries not yet cached."""

    def build(todo: list[tuple[int, Path]]) -> list[dict]:
        mine = [(models[i], out) for i, out in todo if models[i] is not None]
        base_out = next((out for i, out in todo if models[i] is None), None)
        if not mine:  # the base model alone
            metrics, _ = steps.evaluate(ctx.model, None, ctx.data, _evaluation(ctx, splits), base_out)
            return [_eval_info(metrics)]
        per_model, base = steps.evaluate_many(
            ctx.model, [str(m.dir) for m, _ in mine], ctx.data, _evaluation(ctx, splits), [o for _, o in mine],
            zero_shot_dir=base_out,
        )  # fmt: skip
        infos = {m.key: _eval_info(metrics) for (m, _), metrics in zip(mine, per_model, strict=True)}
        if base_out is not None:
            infos[None] = _eval_info(base)
        return [infos[None if models[i] is None else models[i].key] for i, _ in todo]

    specs = [_eval_spec(ctx, m, splits) for m in models]
    labels = [f"({'base' if m is None else m.key})" for m in models]
    return ctx.cache.run_together("eval", specs, build, labels)
