"""The learning-rate search on val for the LLM rows (``lr_search:`` in a suite), the fair-tuning counterpart of
SASRec's search: each target is trained at every rate once, at one seed, and the best val accuracy wins.

``a_tuning``: the A-Tuning mix of the ``ours`` row, trained alone (what anchor-only is) and scored on val.
``full_ft``: the first ``full_ft`` row's natural subset (``matched``: as many samples as ``ours`` at the search
seed, which therefore runs first with the A-Tuning winner). Every trial is a cached step, so the winner's
trial is the very step the rows then reuse.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from behaviorlm_plugin.runs.bench.parts import part_path

if TYPE_CHECKING:
    from behaviorlm_plugin.runs.bench.runner import BenchRunner

VAL = "val"


def _score(ev) -> dict:
    m = ev.info["metrics"][VAL]
    return {"val_accuracy": m.get("weighted_recall"), "val_acc_avg": m.get("acc_avg")}


def _from_parts(runner: BenchRunner, spec: dict) -> dict:
    """Targets another part already searched with the same settings (parts share their winners)."""
    found: dict = {}
    for p in runner.suite.parts:
        path = part_path(runner.suite, p.name)
        if path.is_file():
            search = json.loads(path.read_text()).get("lr_search") or {}
            if search.get("spec") == spec:
                found.update({t: v for t, v in search.items() if t != "spec"})
    return found


def _pick(trials: list[dict]) -> float:
    # Best val accuracy; ties go to the smaller rate (the gentler update).
    return max(trials, key=lambda t: (t["val_accuracy"] or 0.0, -t["lr"]))["lr"]


def _needs(runner: BenchRunner) -> set[str]:
    """The targets whose winner this run's rows train with."""
    rows = [v for v in runner.suite.variants if runner.only is None or v.name in runner.only]
    need = {"full_ft" for v in rows if v.kind == "full_ft"}
    need |= {"a_tuning" for v in rows if v.kind in ("anchor_only", "behaviorlm", "reverse") and not v.skip_a_tuning}
    return need


def _search_a(runner: BenchRunner, seed: int) -> dict:
    ours, trials = runner.suite.variant(runner.suite.ours), []
    for lr in runner.suite.lr_search.values:
        mix = runner.mix(ours.a_tuning.anchors, ours.a_tuning.aux_ratio, seed)
        ev = runner.evaluate(runner.train("a_tuning", mix, None, seed, lr=lr))
        trials.append({"lr": lr, **_score(ev)})
    return {"trials": trials, "best": _pick(trials)}


def _search_full(runner: BenchRunner, seed: int, results: dict) -> dict | None:
    suite = runner.suite
    full = next((v for v in suite.variants if v.kind == "full_ft"), None)
    if full is None:
        return None
    n = full.train_samples
    if n == "matched":
        n = runner.matched_samples(seed, results)
    trials = []
    for lr in suite.lr_search.values:
        ev = runner.evaluate(runner.train("a_tuning", runner.subset("train_all", int(n), seed), None, seed, lr=lr))
        trials.append({"lr": lr, **_score(ev)})
    return {"trials": trials, "best": _pick(trials), "train_samples": int(n)}


def run_lr_search(runner: BenchRunner, results: dict) -> dict:
    """Fill ``runner.searched_lr`` and return the search table (``{spec, target: {trials, best}}``).

    A part runs the targets it names (``parts[].lr_search``) and reuses the others from earlier part files; a
    whole-suite run searches every target.
    """
    cfg = runner.suite.lr_search
    spec = {"values": cfg.values, "targets": cfg.targets, "seed": cfg.seed, "data": runner.fp}
    here = set(runner.part.lr_search) if runner.part else set(cfg.targets)
    found = _from_parts(runner, spec)
    table: dict = {"spec": spec}
    for target in ("a_tuning", "full_ft"):  # A first: matched full fine-tuning counts ours' samples
        if target not in cfg.targets:
            continue
        if target in here:
            res = _search_a(runner, cfg.seed) if target == "a_tuning" else _search_full(runner, cfg.seed, results)
        else:
            res = found.get(target)
        if res is None:
            continue
        table[target] = res
        runner.searched_lr[target] = res["best"]
    missing = sorted(_needs(runner) & set(cfg.targets) - set(runner.searched_lr))
    if missing:
        owners = [p.name for p in runner.suite.parts if set(p.lr_search) & set(missing)]
        raise ValueError(
            f"lr_search: no winner yet for {missing}; run the part(s) that search them first ({', '.join(owners)})"
        )
    runner.log(f"[bench] lr search winners: {runner.searched_lr}")
    return table
