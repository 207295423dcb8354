"""Bench results: per-seed metrics into the paper's columns, mean ± std, verdicts, and ``results.json``'s shape."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict
from pathlib import Path

import numpy as np

from behaviorlm_plugin.eval.metrics import REPORT_COLUMNS
from behaviorlm_plugin.extras.git import git
from behaviorlm_plugin.hparams.bench_args import SuiteConfig
from behaviorlm_plugin.runs.bench.cache import Step


def columns(metrics: dict) -> dict[str, float | None]:
    """The six paper columns from one evaluation, each from its own split (wP/wR on ``test``, the class means on
    ``test_balanced``); a column whose split was not scored is None, never read off another split."""
    out = {}
    for col, split, key in REPORT_COLUMNS:
        value = (metrics.get(split) or {}).get(key)
        out[col] = float(value) if isinstance(value, int | float) else None
    return out


def summarize(per_seed: dict[int, dict]) -> dict:
    cols = [columns(r["metrics"]) for r in per_seed.values()]
    mean, std = {}, {}
    for col, _, _ in REPORT_COLUMNS:
        vals = [c[col] for c in cols if c[col] is not None]
        mean[col] = float(np.mean(vals)) if vals else None
        std[col] = float(np.std(vals, ddof=1)) if len(vals) > 1 else (0.0 if vals else None)
    alphas = [r.get("alpha") for r in per_seed.values() if r.get("alpha") is not None]
    return {"mean": mean, "std": std, "seeds": len(cols), "alpha": float(np.mean(alphas)) if alphas else 0.0}


def verdict(ours: dict, best: dict, col: str) -> str:
    """'win' / 'loss' only when the gap is larger than the two seed spreads together."""
    a, b = ours["mean"][col], best["mean"][col]
    if a is None or b is None:
        return "n/a"
    if ours["seeds"] < 2 or best["seeds"] < 2:
        return "1 seed: no verdict"
    noise = (ours["std"][col] or 0.0) + (best["std"][col] or 0.0)
    if abs(a - b) <= noise:
        return "within noise"
    return "win" if a > b else "loss"


def preregistration(source: str) -> dict | None:
    """The commit that last changed the suite file (its primary comparisons are pre-registered there), and whether
    the file has changes not yet committed; None outside a git checkout."""
    if not source:
        return None
    path = Path(source).resolve()
    logged = git(["log", "-1", "--format=%H %cs", "--", str(path)], path.parent)
    dirty = git(["status", "--porcelain", "--", str(path)], path.parent)
    if logged is None or dirty is None:
        return None
    commit = logged.split()
    return {
        "file": source,
        "commit": commit[0] if commit else None,
        "date": commit[1] if len(commit) > 1 else None,
        "uncommitted_changes": bool(dirty),
    }


def machine_info() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}
    for mod in ("torch", "transformers", "peft", "llamafactory", "trl", "datasets"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:
            info[mod] = None
    try:
        import torch

        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        info["torch_threads"] = torch.get_num_threads()
    except Exception:
        info["gpu"] = None
    return info


SASREC_ROWS = {
    "prior_correction": (
        "SASRec + prior correction",
        "SASRec's probabilities under score - alpha * log prior, alpha chosen on val (the prior correction)",
    ),
    "logit_adjusted_loss": (
        "SASRec (logit-adjusted loss)",
        "SASRec trained with the logit-adjusted loss (tau 1 = balanced softmax), the searched settings otherwise",
    ),
}
"""SASRec's tail-aware rows: key -> (row name, description). Results written before the prior correction had
one name call the first row "SASRec + post-hoc adjustment"; they load and render as written."""


LEGACY_SASREC_ROW = (
    "SASRec + post-hoc adjustment",
    "SASRec's probabilities under score - alpha * log prior, alpha chosen on val (the prior correction)",
)


def sasrec_variants(sasrec: dict) -> dict:
    """The SASRec row and its tail-aware rows (prior correction, logit-adjusted loss), per seed."""
    full = {s: {**r["full"], "train_samples": r["full"]["train_size"]} for s, r in sasrec.items()}
    rows = {
        "SASRec": (
            "sasrec",
            "transformer next-behavior classifier on the same windows (searched lr × size)",
            full,
        )
    }
    for name, description in [*SASREC_ROWS.values(), LEGACY_SASREC_ROW]:
        per_seed = {s: r["rows"][name] for s, r in sasrec.items() if name in r.get("rows", {})}
        if per_seed:
            rows[name] = ("sasrec", description, per_seed)
    return {
        name: {
            "kind": kind,
            "group": "baseline",
            "description": description,
            "per_seed": {str(s): r for s, r in per_seed.items()},
            "train_samples": float(np.mean([r["train_samples"] for r in per_seed.values()])),
            **summarize(per_seed),
        }
        for name, (kind, description, per_seed) in rows.items()
    }


def assemble_results(
    suite: SuiteConfig, results: dict, sasrec: dict | None, steps: list[Step], wall: float, evidence: dict | None = None
) -> dict:
    variants = {}
    for v in suite.variants:
        if v.name not in results:
            continue
        per_seed = results[v.name]
        variants[v.name] = {
            "kind": v.kind,
            "group": v.group,
            "description": v.description,
            "sweep": asdict(v.sweep) if v.sweep else None,
            "config": {k: val for k, val in asdict(v).items() if k not in ("name", "description", "sweep")},
            "per_seed": {str(s): r for s, r in per_seed.items()},
            "train_samples": float(np.mean([r["train_samples"] for r in per_seed.values()])),
            **summarize(per_seed),
        }
    if sasrec:
        variants.update(sasrec_variants(sasrec))
    by_kind: dict[str, dict] = {}
    for s in steps:
        d = by_kind.setdefault(s.kind, {"runs": 0, "cache_hits": 0, "seconds_run": 0.0, "seconds_saved": 0.0})
        d["cache_hits" if s.cached else "runs"] += 1
        d["seconds_saved" if s.cached else "seconds_run"] += s.seconds
    return {
        "suite": suite.name,
        "note": suite.note,
        "ours": suite.ours,
        "seeds": suite.seeds,
        "model": suite.model_name_or_path,
        "template": suite.template,
        "data": {"dataset_dir": suite.prepare.dataset_dir, "name": suite.prepare.name},
        "evaluation": asdict(suite.evaluation),
        "training": {  # what every LLM row trained with (the recipes' keys the suite changes, the layers, the reuse)
            "overrides": asdict(suite.overrides),
            "lora_top_layers": suite.lora_top_layers,
            "frozen_reuse": suite.frozen_reuse.enabled,
            "stock_forward": suite.stock_forward,
            "data_seed": suite.data_seed,
            "prompt_formats": suite.prepare.prompt_formats,
            "fixed_candidate_order": suite.prepare.fixed_candidate_order,
        },
        "primary": [asdict(p) for p in suite.primary],
        "preregistration": preregistration(suite.source),
        "machine": machine_info(),
        "wall_seconds": round(wall, 1),
        "steps": by_kind,
        "variants": variants,
        "sasrec_curve": _sasrec_curve(sasrec) if sasrec else {},
        "sasrec_search": {str(s): r["full"]["search"] for s, r in sasrec.items()} if sasrec else {},
        **(evidence or {}),
    }


def _sasrec_curve(sasrec: dict) -> dict:
    sizes = sorted({int(n) for r in sasrec.values() for n in r["curve"]})
    out = {}
    for n in sizes:
        out[str(n)] = summarize(
            {s: {"metrics": r["curve"][n]["metrics"]} for s, r in sasrec.items() if n in r["curve"]}
        )
    return out


def best_baseline(results: dict, col: str) -> str | None:
    rows = [(n, v) for n, v in results["variants"].items() if v["group"] == "baseline" and v["mean"][col] is not None]
    return max(rows, key=lambda r: r[1]["mean"][col])[0] if rows else None


def sweep_rows(results: dict, param: str) -> list[tuple[str, dict]]:
    """(name, row) of the sweep rows over ``param``, by value (from each row's ``sweep`` field, never its name)."""
    rows = [(n, v) for n, v in results["variants"].items() if (v.get("sweep") or {}).get("param") == param]
    return sorted(rows, key=lambda r: r[1]["sweep"]["value"])


def efficiency_curves(results: dict) -> dict[str, list[tuple[float, dict]]]:
    """Sample-efficiency series: SASRec's train-size curve (plus its full-size row), BehaviorLM's k sweep
    (with the ``ours`` row) and the full fine-tuning rows; each a list of (train samples, summary)."""
    variants, ours = results["variants"], results["ours"]
    sasrec = [(float(n), s) for n, s in results.get("sasrec_curve", {}).items()]
    if "SASRec" in variants:
        sasrec.append((variants["SASRec"]["train_samples"], variants["SASRec"]))
    blm = [(variants[ours]["train_samples"], variants[ours])] if ours in variants else []
    series = sweep_rows(results, "anchors") or sweep_rows(results, "k")  # anchor counts when swept, else k
    for _, v in series:  # the one equal to ours (same sample count) is ours itself
        if all(v["train_samples"] != x for x, _ in blm):
            blm.append((v["train_samples"], v))
    fft = [(v["train_samples"], v) for v in variants.values() if v["kind"] == "full_ft"]
    label = "BehaviorLM (anchor sweep)" if sweep_rows(results, "anchors") else "BehaviorLM (k sweep)"
    out = {"SASRec": sasrec, label: blm, "full fine-tuning": fft}
    return {k: sorted(pts, key=lambda p: p[0]) for k, pts in out.items() if pts}
