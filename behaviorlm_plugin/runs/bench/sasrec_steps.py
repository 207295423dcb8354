"""The SASRec baseline inside a suite: a search per seed on the full train_all, then a train-size curve.

Each (seed, train size) is one cached ``sasrec`` step, evaluated on exactly the capped samples the
LLM rows use, so every number in the report compares like with like.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

from behaviorlm_plugin.eval.evaluate import evaluate_predictions
from behaviorlm_plugin.eval.metrics import SUMMARY_KEYS
from behaviorlm_plugin.extras.fileio import read_jsonl
from behaviorlm_plugin.hparams.prior_correction_args import AUTO, PriorCorrectionArguments
from behaviorlm_plugin.hparams.sasrec_args import SASRecConfig
from behaviorlm_plugin.runs.bench.cache import Step
from behaviorlm_plugin.runs.bench.context import BenchContext
from behaviorlm_plugin.runs.bench.model_free import prior_correction_step, sample_predictions
from behaviorlm_plugin.runs.bench.results import SASREC_ROWS


def _row(ctx: BenchContext, step: Step, train_size: int) -> dict:
    return {
        "metrics": step.info["metrics"],
        "train_samples": train_size,
        "alpha": step.info.get("alpha", 0.0),
        **({"alpha_choice": step.info["alpha_choice"]} if "alpha_choice" in step.info else {}),
        "predictions": sample_predictions(ctx, step.dir),
    }


def run_sasrec_steps(ctx: BenchContext) -> dict:
    """Per seed: the searched SASRec (``full``), its train-size curve and the tail-aware rows (``rows``)."""
    cfg = ctx.suite.sasrec
    per_seed = {}
    for seed in ctx.suite.seeds:
        best = sasrec_step(ctx, seed, None, cfg.grid, replace(cfg.config, seed=seed))
        tuned = SASRecConfig(**best.info["search"]["best_config"])
        curve = {n: sasrec_step(ctx, seed, n, None, tuned).info for n in cfg.train_sizes}
        size = best.info["train_size"]
        full = {**best.info, "predictions": _row(ctx, best, size)["predictions"]}
        rows = {}
        if cfg.prior_correction_row:
            rule = _suite_rule(ctx)
            rows[SASREC_ROWS["prior_correction"][0]] = _row(ctx, prior_correction_step(ctx, best, rule), size)
        if cfg.logit_adjusted_loss:
            la = sasrec_step(ctx, seed, None, None, replace(tuned, loss="logit_adjusted"))
            rows[SASREC_ROWS["logit_adjusted_loss"][0]] = _row(ctx, la, size)
        per_seed[seed] = {"full": full, "curve": curve, "rows": rows}
    return per_seed


def _suite_rule(ctx: BenchContext) -> PriorCorrectionArguments:
    """``auto`` with the suite's grid, floor and split (``evaluation.prior_correction``), as the LLM rows get."""
    base = ctx.suite.evaluation.prior_correction
    return PriorCorrectionArguments(
        alpha=AUTO, head_floor=base.head_floor, alpha_grid=list(base.alpha_grid), choose_on=base.choose_on
    )


def _capped_metrics(ctx: BenchContext, out: Path) -> dict:
    """Metrics of the SASRec predictions on the same capped evaluation samples as the LLM rows."""
    ev = ctx.suite.evaluation
    metrics = {}
    for split in ev.splits:
        cap = ev.cap(split)
        _, metas = ctx.data.load(split, max_samples=cap.max_samples, max_per_class=cap.max_per_class, seed=ev.seed)
        ids = {m["id"] for m in metas}
        rows = [r for r in read_jsonl(out / split / "preds.jsonl") if r["id"] in ids]
        m = evaluate_predictions(rows, ctx.data.stats, source=str(out / split / "preds.jsonl"))
        metrics[split] = {k: m.get(k) for k in SUMMARY_KEYS}
    return metrics


def sasrec_step(ctx: BenchContext, seed: int, train_size: int | None, grid: dict | None, config: SASRecConfig) -> Step:
    config = replace(config, seed=seed)
    ev = ctx.suite.evaluation

    def build(out: Path) -> dict:
        from behaviorlm_plugin.baselines.sasrec import run_sasrec  # deferred: torch (bench --list-parts needs none)

        res = run_sasrec(
            ctx.data,
            str(out),
            base=config,
            grid=grid or {"lr": [config.lr]},  # one trial: the given config
            train_size=train_size,
            splits=tuple(ev.splits),
            subset_seed=seed,
        )
        search = {k: res["search"][k] for k in ("trials", "best_config", "best_val_acc")}
        return {
            "metrics": _capped_metrics(ctx, out),
            "metrics_full_split": res["metrics"],
            "train_size": res["train_size"],
            "search": search,
        }

    spec = {
        "data": ctx.fp,
        "train_size": train_size,
        "grid": grid,
        "config": asdict(config),
        "caps": ev.caps(),
        "eval_seed": ev.seed,
    }
    return ctx.cache.run("sasrec", spec, build, f"(train_size={train_size or 'all'}, seed={seed})")
