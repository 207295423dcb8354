"""Bench steps that need no model: the oracle's predictions, a row under the prior correction, the oracle frontier,
and each row's per-sample predictions (the material of the paired bootstrap).

Every evaluation step leaves ``<split>/preds.jsonl`` with the full ranked candidate list, so a row at another
alpha is a re-rank of saved probabilities (cheap and cached); ``auto`` picks alpha on the val predictions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from behaviorlm_plugin.data.oracle import ORACLE_SUFFIX, read_oracle
from behaviorlm_plugin.eval.decision_rule import AUTO, choice_text, choose_alpha, rerank_rows
from behaviorlm_plugin.eval.metrics import SUMMARY_KEYS
from behaviorlm_plugin.eval.rows import row_from_probs
from behaviorlm_plugin.extras.fileio import atomic_write_jsonl, read_jsonl

if TYPE_CHECKING:
    from behaviorlm_plugin.runs.bench.cache import Step
    from behaviorlm_plugin.runs.bench.runner import BenchRunner

FRONTIER_ALPHAS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(25))
"""The oracle frontier of ``tail_vs_head.png``: alpha 0 … 1.2."""
VAL = "val"


def eval_ids(runner: BenchRunner) -> dict[str, list[str]]:
    """The ids of the capped evaluation samples of every scored split, in file order (the same for every row)."""
    cached = getattr(runner, "_eval_ids", None)
    if cached is not None:
        return cached
    ev = runner.suite.evaluation
    out = {}
    for split in ev.splits:
        cap = ev.cap(split)
        _, metas = runner.data.load(split, max_samples=cap.max_samples, max_per_class=cap.max_per_class, seed=ev.seed)
        out[split] = [m["id"] for m in metas]
    runner._eval_ids = out
    return out


def split_rows(step_dir: Path, split: str, ids: list[str]) -> list[dict]:
    """A step's preds rows of ``split`` restricted to (and ordered by) the capped ``ids``."""
    by_id = {r["id"]: r for r in read_jsonl(step_dir / split / "preds.jsonl")}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise ValueError(f"{step_dir / split / 'preds.jsonl'} lacks {len(missing)} evaluation samples ({missing[:3]})")
    return [by_id[i] for i in ids]


def _metrics(runner: BenchRunner, rows: list[dict], source: str) -> dict:
    from behaviorlm_plugin.eval.evaluate import evaluate_predictions

    m = evaluate_predictions(rows, runner.data.stats, source=source)
    return {k: m.get(k) for k in SUMMARY_KEYS}


def oracle_step(runner: BenchRunner) -> Step:
    """The simulator's true distribution scored on exactly the evaluation samples of the other rows."""
    ids = eval_ids(runner)

    def build(out: Path) -> dict:
        metrics = {}
        for split, want in ids.items():
            index, probs, behaviors = read_oracle(runner.data.base / f"{split}{ORACLE_SUFFIX}")
            col = {b: i for i, b in enumerate(behaviors)}
            _, metas = runner.data.load(split)
            by_id = {m["id"]: m for m in metas}
            rows = []
            for i in want:
                m, p = by_id[i], probs[index[i]]
                cands = m["candidates"]
                rows.append(row_from_probs(m, cands, np.array([p[col[b]] for b in cands]), method="score", fmt=None))
            atomic_write_jsonl(out / split / "preds.jsonl", rows)
            metrics[split] = _metrics(runner, rows, f"oracle {split}")
        return {"metrics": metrics}

    spec = {"data": runner.fp, "ids": ids}
    return runner.cache.run("oracle", spec, build, "(the simulator's true distributions)")


def adjust_step(runner: BenchRunner, scored: Step, setting: float | str) -> Step:
    """``scored``'s predictions under the prior correction: a fixed alpha, or ``auto`` (chosen on val)."""
    ev = runner.suite.evaluation
    ids = eval_ids(runner)
    if setting == AUTO and VAL not in ids:
        raise ValueError("prior_correction: auto chooses alpha on val; add val to evaluation.splits (a small cap does)")

    def build(out: Path) -> dict:
        freq, info = runner.data.stats.frequency, {}
        alpha = setting
        if setting == AUTO:
            choice = choose_alpha(
                split_rows(scored.dir, VAL, ids[VAL]),
                freq,
                runner.data.stats.head_medium_tail,
                grid=ev.alpha_grid,
                head_floor=ev.head_floor,
            )
            runner.log(choice_text(choice))
            alpha, info["alpha_choice"] = choice.alpha, choice.to_dict()
        metrics = {}
        for split, want in ids.items():
            rows = rerank_rows(split_rows(scored.dir, split, want), freq, alpha)
            atomic_write_jsonl(out / split / "preds.jsonl", rows)
            metrics[split] = _metrics(runner, rows, f"{scored.dir}/{split} at alpha {alpha}")
        return {**info, "alpha": float(alpha), "metrics": metrics}

    spec = {"scored": scored.key, "setting": setting, "grid": list(ev.alpha_grid), "floor": ev.head_floor, "ids": ids}
    return runner.cache.run("adjust", spec, build, f"(alpha {setting} on {scored.key})")


def sample_predictions(runner: BenchRunner, step_dir: Path) -> dict[str, list[int]]:
    """Per split, each evaluation sample's predicted behavior as a code into ``stats.behavior_list`` (-1: invalid)."""
    code = {b: i for i, b in enumerate(runner.data.stats.behavior_list)}
    return {
        split: [code.get(r["prediction"], -1) for r in split_rows(step_dir, split, want)]
        for split, want in eval_ids(runner).items()
    }


def eval_samples(runner: BenchRunner) -> dict:
    """The evaluation samples every row is scored on: ids and label codes per split (for the paired bootstrap)."""
    cached = getattr(runner, "_eval_samples", None)
    if cached is not None:
        return cached
    code = {b: i for i, b in enumerate(runner.data.stats.behavior_list)}
    out = {}
    for split, want in eval_ids(runner).items():
        _, metas = runner.data.load(split)
        label = {m["id"]: m["label"] for m in metas}
        out[split] = {"ids": want, "labels": [code[label[i]] for i in want]}
    runner._eval_samples = out  # read once per run: every snapshot needs it
    return out


def frontier(runner: BenchRunner, oracle: Step) -> list[dict]:
    """The oracle's report columns at every alpha of ``FRONTIER_ALPHAS``."""
    from behaviorlm_plugin.runs.bench.results import columns

    ids, freq = eval_ids(runner), runner.data.stats.frequency
    base = {split: split_rows(oracle.dir, split, want) for split, want in ids.items()}
    points = []
    for a in FRONTIER_ALPHAS:
        metrics = {s: _metrics(runner, rerank_rows(rows, freq, a), f"oracle {s}") for s, rows in base.items()}
        points.append({"alpha": a, **columns(metrics)})
    return points
