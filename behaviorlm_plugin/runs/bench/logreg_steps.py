"""The logistic-regression rows of a suite (kind ``logreg``): the classical same-budget row, trained on the same
natural subset a ``full_ft`` row of that size and seed trains on, scored on exactly the LLM rows' evaluation samples."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from behaviorlm_plugin.baselines.logreg import run_logreg
from behaviorlm_plugin.eval.evaluate import evaluate_predictions
from behaviorlm_plugin.eval.metrics import SUMMARY_KEYS
from behaviorlm_plugin.hparams.bench_args import VariantConfig
from behaviorlm_plugin.hparams.logreg_args import LogRegConfig
from behaviorlm_plugin.runs.bench.cache import Step
from behaviorlm_plugin.runs.bench.context import BenchContext
from behaviorlm_plugin.runs.bench.model_free import split_rows


def logreg_step(ctx: BenchContext, n: int, seed: int, config: LogRegConfig | None = None) -> Step:
    """The regression on ``n`` natural train_all samples (the ``subset`` step's draw at ``seed``)."""
    cfg = config or LogRegConfig()
    ev = ctx.suite.evaluation

    def build(out: Path) -> dict:
        res = run_logreg(ctx.data, out, config=cfg, train_size=n, seed=seed, splits=tuple(ev.splits))
        metrics = {}
        for split, ids in ctx.eval_ids.items():
            m = evaluate_predictions(split_rows(out, split, ids), ctx.data.stats, source=f"logreg {split}")
            metrics[split] = {k: m.get(k) for k in SUMMARY_KEYS}
        return {"metrics": metrics, "metrics_full_split": res["metrics"], "train_samples": res["train_size"]}

    spec = {"data": ctx.fp, "n": n, "seed": seed, "config": asdict(cfg), "caps": ev.caps(), "eval_seed": ev.seed}
    return ctx.cache.run("logreg", spec, build, f"(n={n}, seed={seed})")


def logreg_row(ctx: BenchContext, v: VariantConfig, seed: int, matched: int | None) -> Step:
    n = matched if v.train_samples == "matched" else int(v.train_samples)
    return logreg_step(ctx, int(n), ctx.data_seed(seed))
