"""The SASRec baseline inside a suite: a search per seed on the full train_all, then a train-size curve.

Each (seed, train size) is one cached ``sasrec`` step, evaluated on exactly the capped samples the
LLM rows use, so every number in the report compares like with like.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

from behaviorlm_plugin.eval.metrics import SUMMARY_KEYS
from behaviorlm_plugin.extras.fileio import read_jsonl
from behaviorlm_plugin.hparams.sasrec_args import SASRecConfig

if TYPE_CHECKING:
    from behaviorlm_plugin.runs.bench.cache import Step
    from behaviorlm_plugin.runs.bench.runner import BenchRunner


SASREC_ROWS = {
    "post_hoc": (
        "SASRec + post-hoc adjustment",
        "SASRec's probabilities under score - alpha * log prior, alpha chosen on val (logit adjustment, post hoc)",
    ),
    "logit_adjusted_loss": (
        "SASRec (logit-adjusted loss)",
        "SASRec trained with the logit-adjusted loss (tau 1 = balanced softmax), the searched settings otherwise",
    ),
}


def _row(runner: BenchRunner, step: Step, train_size: int) -> dict:
    from behaviorlm_plugin.runs.bench.adjust import sample_predictions

    return {
        "metrics": step.info["metrics"],
        "train_samples": train_size,
        "alpha": step.info.get("alpha", 0.0),
        **({"alpha_choice": step.info["alpha_choice"]} if "alpha_choice" in step.info else {}),
        "predictions": sample_predictions(runner, step.dir),
    }


def run_sasrec_steps(runner: BenchRunner) -> dict:
    """Per seed: the searched SASRec (``full``), its train-size curve and the tail-aware rows (``rows``)."""
    from behaviorlm_plugin.runs.bench.adjust import adjust_step

    cfg = runner.suite.sasrec
    per_seed = {}
    for seed in runner.suite.seeds:
        best = sasrec_step(runner, seed, None, cfg.grid, replace(cfg.config, seed=seed))
        tuned = SASRecConfig(**best.info["search"]["best_config"])
        curve = {n: sasrec_step(runner, seed, n, None, tuned).info for n in cfg.train_sizes}
        size = best.info["train_size"]
        full = {**best.info, "predictions": _row(runner, best, size)["predictions"]}
        rows = {}
        if cfg.post_hoc:
            rows[SASREC_ROWS["post_hoc"][0]] = _row(runner, adjust_step(runner, best, "auto"), size)
        if cfg.logit_adjusted_loss:
            la = sasrec_step(runner, seed, None, None, replace(tuned, loss="logit_adjusted"))
            rows[SASREC_ROWS["logit_adjusted_loss"][0]] = _row(runner, la, size)
        per_seed[seed] = {"full": full, "curve": curve, "rows": rows}
    return per_seed


def _capped_metrics(runner: BenchRunner, out: Path) -> dict:
    """Metrics of the SASRec predictions on the same capped evaluation samples as the LLM rows."""
    from behaviorlm_plugin.eval.evaluate import evaluate_predictions

    ev = runner.suite.evaluation
    metrics = {}
    for split in ev.splits:
        cap = ev.cap(split)
        _, metas = runner.data.load(split, max_samples=cap.max_samples, max_per_class=cap.max_per_class, seed=ev.seed)
        ids = {m["id"] for m in metas}
        rows = [r for r in read_jsonl(out / split / "preds.jsonl") if r["id"] in ids]
        m = evaluate_predictions(rows, runner.data.stats, source=str(out / split / "preds.jsonl"))
        metrics[split] = {k: m.get(k) for k in SUMMARY_KEYS}
    return metrics


def sasrec_step(
    runner: BenchRunner, seed: int, train_size: int | None, grid: dict | None, config: SASRecConfig
) -> Step:
    from behaviorlm_plugin.baselines.sasrec import run_sasrec

    config = replace(config, seed=seed)
    ev = runner.suite.evaluation

    def build(out: Path) -> dict:
        res = run_sasrec(
            runner.data,
            str(out),
            base=config,
            grid=grid or {"lr": [config.lr]},  # one trial: the given config
            train_size=train_size,
            splits=tuple(ev.splits),
            subset_seed=seed,
        )
        search = {k: res["search"][k] for k in ("trials", "best_config", "best_val_acc")}
        return {
            "metrics": _capped_metrics(runner, out),
            "metrics_full_split": res["metrics"],
            "train_size": res["train_size"],
            "search": search,
        }

    spec = {
        "data": runner.fp,
        "train_size": train_size,
        "grid": grid,
        "config": asdict(config),
        "caps": ev.caps(),
        "eval_seed": ev.seed,
    }
    return runner.cache.run("sasrec", spec, build, f"(train_size={train_size or 'all'}, seed={seed})")
