"""Bench steps that need no model: the oracle's predictions, a row under the prior correction, the oracle frontier,
and each row's per-sample predictions (the material of the paired bootstrap).

Every evaluation step leaves ``<split>/preds.jsonl`` with the full ranked candidate list, so a row at another
alpha is a re-rank of saved probabilities (cheap and cached); ``auto`` picks alpha on the val predictions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from behaviorlm_plugin.data.oracle import ORACLE_SUFFIX, read_oracle
from behaviorlm_plugin.eval.curves import CURVE_ALPHAS
from behaviorlm_plugin.eval.evaluate import evaluate_predictions
from behaviorlm_plugin.eval.metrics import SUMMARY_KEYS
from behaviorlm_plugin.eval.prior_correction import choice_text, choose_alpha, rerank_rows
from behaviorlm_plugin.eval.reference import reference_rows
from behaviorlm_plugin.eval.rows import row_from_probs
from behaviorlm_plugin.extras.fileio import atomic_write_jsonl, read_jsonl
from behaviorlm_plugin.hparams.prior_correction_args import PriorCorrectionArguments
from behaviorlm_plugin.runs.bench.cache import Step
from behaviorlm_plugin.runs.bench.context import BenchContext
from behaviorlm_plugin.runs.bench.results import columns

FRONTIER_ALPHAS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(25))
"""The oracle frontier of ``tail_vs_head.png``: alpha 0 … 1.2."""


def split_rows(step_dir: Path, split: str, ids: list[str]) -> list[dict]:
    """A step's preds rows of ``split`` restricted to (and ordered by) the capped ``ids``."""
    by_id = {r["id"]: r for r in read_jsonl(step_dir / split / "preds.jsonl")}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise ValueError(f"{step_dir / split / 'preds.jsonl'} lacks {len(missing)} evaluation samples ({missing[:3]})")
    return [by_id[i] for i in ids]


def _metrics(ctx: BenchContext, rows: list[dict], source: str) -> dict:
    m = evaluate_predictions(rows, ctx.data.stats, source=source)
    return {k: m.get(k) for k in SUMMARY_KEYS}


def oracle_step(ctx: BenchContext) -> Step:
    """The simulator's true distribution scored on exactly the evaluation samples of the other rows."""
    ids = ctx.eval_ids

    def build(out: Path) -> dict:
        metrics = {}
        for split, want in ids.items():
            index, probs, behaviors = read_oracle(ctx.data.base / f"{split}{ORACLE_SUFFIX}")
            col = {b: i for i, b in enumerate(behaviors)}
            _, metas = ctx.data.load(split)
            by_id = {m["id"]: m for m in metas}
            rows = []
            for i in want:
                m, p = by_id[i], probs[index[i]]
                cands = m["candidates"]
                rows.append(row_from_probs(m, cands, np.array([p[col[b]] for b in cands]), method="score", fmt=None))
            atomic_write_jsonl(out / split / "preds.jsonl", rows)
            metrics[split] = _metrics(ctx, rows, f"oracle {split}")
        return {"metrics": metrics}

    spec = {"data": ctx.fp, "ids": ids}
    return ctx.cache.run("oracle", spec, build, "(the simulator's true distributions)")


def hour_place_step(ctx: BenchContext) -> Step:
    """The hour+place rule (the most frequent behavior of the next event's hour and place in ``train_all``, add-one
    smoothed) on exactly the evaluation samples of the other rows, with every candidate ranked: a row with an α
    curve like any other. It is fit on all of ``train_all``, so at a small n it is a strong reference."""
    ids = ctx.eval_ids

    def build(out: Path) -> dict:
        metrics = {}
        for split, want in ids.items():
            rows = [{**r, "method": "score"} for r in reference_rows(ctx.data, split, want)["hour+place"]]
            atomic_write_jsonl(out / split / "preds.jsonl", rows)
            metrics[split] = _metrics(ctx, rows, f"hour+place {split}")
        return {"metrics": metrics, "train_samples": ctx.data.stats.samples_written["train_all"]}

    return ctx.cache.run("hour_place", {"data": ctx.fp, "ids": ids}, build, "(the hour+place rule on train_all)")


def prior_correction_step(ctx: BenchContext, scored: Step, rule: PriorCorrectionArguments) -> Step:
    """``scored``'s predictions under the prior correction: a fixed alpha, or ``auto`` (chosen on
    ``rule.choose_on``'s predictions)."""
    ids = ctx.eval_ids
    if rule.is_auto and rule.choose_on not in ids:
        raise ValueError(
            f"prior_correction: auto chooses alpha on {rule.choose_on}; add {rule.choose_on} to evaluation.splits "
            "(a small cap does)"
        )

    def build(out: Path) -> dict:
        freq, info = ctx.data.stats.frequency, {}
        alpha = rule.setting
        if rule.is_auto:
            choice = choose_alpha(
                split_rows(scored.dir, rule.choose_on, ids[rule.choose_on]),
                freq,
                ctx.data.stats.head_medium_tail,
                grid=rule.alpha_grid,
                head_floor=rule.head_floor,
            )
            ctx.log(choice_text(choice))
            alpha, info["alpha_choice"] = choice.alpha, choice.to_dict()
        metrics = {}
        for split, want in ids.items():
            rows = rerank_rows(split_rows(scored.dir, split, want), freq, alpha)
            atomic_write_jsonl(out / split / "preds.jsonl", rows)
            metrics[split] = _metrics(ctx, rows, f"{scored.dir}/{split} at alpha {alpha}")
        return {**info, "alpha": float(alpha), "metrics": metrics}

    spec = {
        "scored": scored.key,
        "setting": rule.setting,
        "grid": list(rule.alpha_grid),
        "floor": rule.head_floor,
        "choose_on": rule.choose_on,
        "ids": ids,
    }
    return ctx.cache.run("prior_correction", spec, build, f"(alpha {rule.setting} on {scored.key})")


def sample_predictions(ctx: BenchContext, step_dir: Path) -> dict[str, list[int]]:
    """Per split, each evaluation sample's predicted behavior as a code into ``stats.behavior_list`` (-1: invalid)."""
    code = {b: i for i, b in enumerate(ctx.data.stats.behavior_list)}
    return {
        split: [code.get(r["prediction"], -1) for r in split_rows(step_dir, split, want)]
        for split, want in ctx.eval_ids.items()
    }


def frontier(ctx: BenchContext, oracle: Step) -> list[dict]:
    """The oracle's report columns at every alpha of ``FRONTIER_ALPHAS``, and its val Acc_avg there (where val
    is scored), on which the oracle's best alpha is picked: never on a test split."""
    ids, freq = ctx.eval_ids, ctx.data.stats.frequency
    base = {split: split_rows(oracle.dir, split, want) for split, want in ids.items()}
    points = []
    for a in FRONTIER_ALPHAS:
        metrics = {s: _metrics(ctx, rerank_rows(rows, freq, a), f"oracle {s}") for s, rows in base.items()}
        val = metrics.get("val") or {}
        points.append({"alpha": a, **columns(metrics), "val_Acc_avg": val.get("acc_avg")})
    return points


def curve_predictions(ctx: BenchContext, scored: Step) -> dict:
    """A row's prior-correction curve as data: per α of ``CURVE_ALPHAS``, each evaluation sample's predicted
    behavior code on every scored split but the natural test (the curves' reading needs a val split and
    test_balanced). Rows without ranked probabilities (none today) get no curve."""
    code = {b: i for i, b in enumerate(ctx.data.stats.behavior_list)}
    freq = ctx.data.stats.frequency
    out: dict = {"alphas": list(CURVE_ALPHAS)}
    for split, want in ctx.eval_ids.items():
        if split == "test":
            continue
        rows = split_rows(scored.dir, split, want)
        out[split] = [[code.get(r["prediction"], -1) for r in rerank_rows(rows, freq, a)] for a in CURVE_ALPHAS]
    return out
