"""The learning-rate search on val for the LLM rows (``lr_search:`` in a suite), the fair-tuning counterpart of
SASRec's search: each target is trained at every rate once, at one seed, and the best val accuracy wins.

``a_tuning``: the A-Tuning mix of the ``ours`` row, trained alone (what anchor-only is) and scored on val.
``full_ft``: the first ``full_ft`` row's natural subset (``matched``: as many samples as ``ours`` at the search
seed, which therefore runs first with the A-Tuning winner). Every trial is a cached step, so the winner's
trial is the very step the rows then reuse.
"""

from __future__ import annotations

from collections.abc import Callable

from behaviorlm_plugin.hparams.bench_plan_args import PartConfig
from behaviorlm_plugin.runs.bench import cached_steps
from behaviorlm_plugin.runs.bench.cache import Step
from behaviorlm_plugin.runs.bench.context import BenchContext
from behaviorlm_plugin.runs.bench.parts import trusted_part

Matched = Callable[[int, dict[str, float]], int]
"""(seed, winners so far) -> how many samples ``ours`` trained on at that seed (the runner runs it if needed)."""


ONE_STAGE_KINDS = ("full_ft", "balanced_ft", "one_stage")
"""Kinds trained in one stage: they take the ``full_ft`` winner (the one-stage rate); the others A-Tuning's."""


def searched_target(kind: str) -> str:
    """The search target whose winner a variant kind's first stage trains with."""
    return "full_ft" if kind in ONE_STAGE_KINDS else "a_tuning"


def _score(ev: Step, split: str) -> dict:
    m = ev.info["metrics"][split]
    return {"val_accuracy": m.get("weighted_recall"), "val_acc_avg": m.get("acc_avg")}


def _from_parts(ctx: BenchContext, spec: dict) -> dict:
    """Targets another part already searched with the same settings (parts share their winners)."""
    found: dict = {}
    for p in ctx.suite.parts:
        search = (trusted_part(ctx.suite, p.name) or {}).get("lr_search") or {}
        if search.get("spec") == spec:
            found.update({t: v for t, v in search.items() if t != "spec"})
    return found


def _pick(trials: list[dict], metric: str = "accuracy") -> float:
    # The best metric on the search's split; ties go to the smaller rate (the gentler update).
    key = "val_accuracy" if metric == "accuracy" else "val_acc_avg"
    return max(trials, key=lambda t: (t[key] or 0.0, -t["lr"]))["lr"]


def _needs(ctx: BenchContext, only: list[str] | None) -> set[str]:
    """The targets whose winner this run's rows train with."""
    rows = [v for v in ctx.suite.variants if only is None or v.name in only]
    need = {"full_ft" for v in rows if v.kind in ONE_STAGE_KINDS}
    need |= {"a_tuning" for v in rows if v.kind in ("anchor_only", "behaviorlm", "reverse") and not v.skip_a_tuning}
    need |= {"a_tuning" for v in rows if v.kind == "one_stage"}  # ours' A model picks its B-set
    need |= {"b_tuning" for v in rows if v.kind in ("behaviorlm", "reverse")}
    return need


def _trials(ctx: BenchContext, models: list[Step]) -> list[dict]:
    """Each trial's model scored on the search's split only, the trials together (``evaluate_together``); the
    winner's other splits are scored with its row."""
    cfg = ctx.suite.lr_search
    evals = cached_steps.evaluate_together(ctx, models, splits=(cfg.split,))
    return [{"lr": lr, **_score(ev, cfg.split)} for lr, ev in zip(cfg.values, evals, strict=True)]


def _search_a(ctx: BenchContext, seed: int) -> dict:
    ours = ctx.suite.variant(ctx.suite.ours)
    mix = cached_steps.mix(ctx, ours.a_tuning.anchors, ours.a_tuning.aux_ratio, ctx.data_seed(seed))
    models = [cached_steps.train(ctx, "a_tuning", mix, None, seed, lr=lr) for lr in ctx.suite.lr_search.values]
    trials = _trials(ctx, models)
    return {"trials": trials, "best": _pick(trials, ctx.suite.lr_search.metric)}


def _search_full(ctx: BenchContext, seed: int, matched: Matched, winners: dict[str, float]) -> dict | None:
    suite = ctx.suite
    full = next((v for v in suite.variants if v.kind == "full_ft"), None)
    if full is None:
        return None
    n = full.train_samples
    if n == "matched":
        n = matched(seed, dict(winners))
    data = cached_steps.subset(ctx, "train_all", int(n), ctx.data_seed(seed))
    trials = _trials(
        ctx, [cached_steps.train(ctx, "a_tuning", data, None, seed, lr=lr) for lr in suite.lr_search.values]
    )
    return {"trials": trials, "best": _pick(trials, suite.lr_search.metric), "train_samples": int(n)}


def _search_b(ctx: BenchContext, seed: int, winners: dict[str, float]) -> dict:
    """B-Tuning's rate: ``ours``' A-Tuned model (at A-Tuning's winner) and its selection, B-Tuned at each rate."""
    ours = ctx.suite.variant(ctx.suite.ours)
    mix = cached_steps.mix(ctx, ours.a_tuning.anchors, ours.a_tuning.aux_ratio, ctx.data_seed(seed))
    a_model = cached_steps.train(ctx, "a_tuning", mix, None, seed, lr=winners.get("a_tuning"))
    picked = cached_steps.select(ctx, a_model, ours.selection, ctx.data_seed(seed))
    models = [cached_steps.train(ctx, "b_tuning", picked, a_model, seed, lr=lr) for lr in ctx.suite.lr_search.values]
    trials = _trials(ctx, models)
    return {"trials": trials, "best": _pick(trials, ctx.suite.lr_search.metric)}


def run_lr_search(
    ctx: BenchContext, *, only: list[str] | None, part: PartConfig | None, matched: Matched
) -> tuple[dict, dict[str, float]]:
    """The search table (``{spec, target: {trials, best}}``) and the winners by target.

    A part runs the targets it names (``parts[].lr_search``) and reuses the others from earlier part files; a
    whole-suite run searches every target.
    """
    cfg = ctx.suite.lr_search
    spec = {"values": cfg.values, "targets": cfg.targets, "seed": cfg.seed, "data": ctx.fp}
    if (cfg.split, cfg.metric) != ("val", "accuracy"):  # earlier suites' spec, unchanged when the choice is too
        spec.update(split=cfg.split, metric=cfg.metric)
    here = set(part.lr_search) if part else set(cfg.targets)
    found = _from_parts(ctx, spec)
    table: dict = {"spec": spec}
    winners: dict[str, float] = {}
    # A first: B-Tuning is searched on A's winner, and matched full fine-tuning counts ours' samples.
    for target in ("a_tuning", "b_tuning", "full_ft"):
        if target not in cfg.targets:
            continue
        if target in here:
            if target == "a_tuning":
                res = _search_a(ctx, cfg.seed)
            elif target == "b_tuning":
                res = _search_b(ctx, cfg.seed, winners)
            else:
                res = _search_full(ctx, cfg.seed, matched, winners)
        else:
            res = found.get(target)
        if res is None:
            continue
        table[target] = res
        winners[target] = res["best"]
    missing = sorted(_needs(ctx, only) & set(cfg.targets) - set(winners))
    if missing:
        owners = [p.name for p in ctx.suite.parts if set(p.lr_search) & set(missing)]
        raise ValueError(
            f"lr_search: no winner yet for {missing}; run the part(s) that search them first ({', '.join(owners)})"
        )
    ctx.log(f"[bench] lr search winners: {winners}")
    return table, winners
