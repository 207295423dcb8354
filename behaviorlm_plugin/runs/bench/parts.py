"""Suites in named parts: each part a group of rows that fits one short GPU call, its results in a small file.

``behaviorlm bench SUITE.yaml --part NAME`` runs one part (``--part next`` the first without a file) and writes
``out_dir/parts/NAME.json``: the part's rows with their per-sample predictions, never an adapter. Every run then
merges whatever part files exist into ``results.json``, ``report.md`` and the plots, so a later call, or a later
session on another machine, continues where the last stopped. ``--list-parts`` prints the parts, their sizes
and the time model's estimate; ``--merge`` only merges.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from filelock import FileLock, Timeout

from behaviorlm_plugin.hparams.bench_args import SuiteConfig
from behaviorlm_plugin.hparams.bench_plan_args import PartConfig
from behaviorlm_plugin.hparams.parser import ConfigError
from behaviorlm_plugin.runs.bench.evidence import bootstrap_table, primary_table
from behaviorlm_plugin.runs.bench.part_files import PartFileError, check_same_data, read_part
from behaviorlm_plugin.runs.bench.report import write_outputs
from behaviorlm_plugin.runs.bench.results import summarize
from behaviorlm_plugin.runs.bench.time_model import estimate_part, estimate_parts, plan_table

NEXT = "next"
PARTS_DIR = "parts"


def part_path(suite: SuiteConfig, name: str) -> Path:
    return Path(suite.out_dir) / PARTS_DIR / f"{name}.json"


def part_lock(suite: SuiteConfig, name: str) -> FileLock:
    """Held while a process runs the part, so ``--part next`` in another process picks a different one."""
    path = part_path(suite, name).with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path))


def trusted_part(suite: SuiteConfig, name: str) -> dict | None:
    """A part file that passes every check of :func:`~.part_files.read_part`, else None (absent or refused)."""
    path = part_path(suite, name)
    if not path.is_file():
        return None
    try:
        return read_part(path, name, suite)
    except PartFileError:
        return None


def done_parts(suite: SuiteConfig) -> list[str]:
    """Parts whose file is trusted and holds complete results (a damaged or foreign file is not done)."""
    return [p.name for p in suite.parts if (trusted_part(suite, p.name) or {}).get("complete")]


def claim_next(suite: SuiteConfig, skip: set[str]) -> tuple[PartConfig, FileLock] | None:
    """The first part that is not done, not in ``skip`` and not being run by another process, with its lock held
    (the caller releases it when the part is finished); None when there is none."""
    done = set(done_parts(suite))
    for p in suite.parts:
        if p.name in done or p.name in skip:
            continue
        lock = part_lock(suite, p.name)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue  # another process runs it
        if p.name in done_parts(suite):  # finished between the two looks
            lock.release()
            continue
        return p, lock
    return None


def resolve_parts(suite: SuiteConfig, names: list[str]) -> list[PartConfig]:
    """``--part`` values (repeatable, comma lists, or ``next``) as the suite's parts, in the given order."""
    if not suite.parts:
        raise ConfigError(f"suite {suite.name!r} has no parts; run it whole (without --part)")
    known = {p.name: p for p in suite.parts}
    out: list[PartConfig] = []
    for raw in names:
        for name in (n.strip() for n in raw.split(",") if n.strip()):
            if name == NEXT:
                left = [p for p in suite.parts if p.name not in done_parts(suite) and p not in out]
                if not left:
                    raise ConfigError(f"--part next: every part of {suite.name!r} is done; --merge renders the report")
                out.append(left[0])
            elif name not in known:
                raise ConfigError(f"--part {name}: unknown part; the suite has {', '.join(known)} (or 'next')")
            elif known[name] not in out:
                out.append(known[name])
    return out


def merge_parts(suite: SuiteConfig, log: Callable[[str], None] = print, data_fp: str | None = None) -> dict:
    """``results.json``, ``report.md`` and plots from the complete part files, in the suite's order.

    Every part file is checked first (:func:`~.part_files.read_part`; ``data_fp``: the data prepared now, when
    known); one refused file stops the merge before anything is written. An incomplete part (``complete:
    false``, what a killed or running part leaves) is not merged: it stays listed as missing until it is
    re-run, which the step cache makes cheap.
    """
    loaded: list[tuple[str, Path, dict]] = []
    for p in suite.parts:
        path = part_path(suite, p.name)
        if path.is_file():
            loaded.append((p.name, path, read_part(path, p.name, suite)))
    check_same_data([(path, content) for _, path, content in loaded], data_fp)
    complete = [(n, c) for n, _, c in loaded if c["complete"]]
    if not complete:
        where = Path(suite.out_dir) / PARTS_DIR
        running = [n for n, _, c in loaded if not c["complete"]]
        extra = f" ({', '.join(running)} incomplete: killed or still running)" if running else ""
        raise ConfigError(f"{where}: no complete part results yet{extra}; run a part first (--part NAME)")
    merged = merge_results([c for _, c in complete])
    done = [n for n, _ in complete]
    merged["parts"] = {
        "done": done,
        "missing": [p.name for p in suite.parts if p.name not in done],
        "incomplete": [n for n, _, c in loaded if not c["complete"]],
    }
    merged["complete"] = not merged["parts"]["missing"]
    merged["bootstrap"] = bootstrap_table(merged)
    merged["primary_table"] = primary_table(merged)
    merged.pop("provenance", None)
    merged.pop("checksum", None)
    merged["provenance"] = {n: c["provenance"] for n, c in complete}
    order = [v.name for v in suite.variants] + [
        n for n in merged["variants"] if n not in {v.name for v in suite.variants}
    ]
    merged["variants"] = {n: merged["variants"][n] for n in order if n in merged["variants"]}
    write_outputs(suite.out_dir, merged)
    log(f"[bench] merged parts {', '.join(done) or '-'}; missing: {', '.join(merged['parts']['missing']) or 'none'}")
    return merged


def merge_results(results: list[dict]) -> dict:
    """One results dict from several part results (later parts win for a row both hold)."""
    first = results[0]
    out = {**first, "variants": {}, "steps": {}, "sasrec_curve": {}, "sasrec_search": {}, "wall_seconds": 0.0}
    for r in results:
        if r.get("eval_samples"):
            if out.get("eval_samples") and _ids(out["eval_samples"]) != _ids(r["eval_samples"]):
                raise ConfigError(
                    "parts were scored on different evaluation samples (the data or evaluation caps changed between "
                    "parts); re-run the parts with one configuration"
                )
            out["eval_samples"] = r["eval_samples"]
        for name, row in r.get("variants", {}).items():
            _merge_row(out["variants"], name, row)
        out["sasrec_curve"].update(r.get("sasrec_curve") or {})
        out["sasrec_search"].update(r.get("sasrec_search") or {})
        out["wall_seconds"] += r.get("wall_seconds", 0.0)
        if r.get("lr_search"):  # each part holds the targets it searched or reused; pool them
            out["lr_search"] = {**(out.get("lr_search") or {}), **r["lr_search"]}
        for k in ("oracle_frontier", "behaviors", "categories", "machine"):
            if r.get(k):
                out[k] = r[k]
        for kind, d in (r.get("steps") or {}).items():
            acc = out["steps"].setdefault(kind, dict.fromkeys(d, 0))
            for key, val in d.items():
                acc[key] = acc.get(key, 0) + val
    return out


def _merge_row(variants: dict, name: str, row: dict) -> None:
    """A row's seeds from several parts: per seed the later part wins, then mean ± std over the union."""

    if name not in variants:
        variants[name] = row
        return
    per_seed = {**variants[name]["per_seed"], **row["per_seed"]}
    variants[name] = {
        **row,
        "per_seed": per_seed,
        "train_samples": sum(r["train_samples"] for r in per_seed.values()) / len(per_seed),
        **summarize(per_seed),
    }


def _ids(samples: dict) -> dict:
    return {s: v["ids"] for s, v in samples.items()}


def earlier_train_samples(suite: SuiteConfig, name: str, seed: int) -> int | None:
    """A row's training-sample count at ``seed`` from an existing part file (for 'matched' rows of later parts)."""
    if not suite.parts:
        return None
    for p in suite.parts:
        content = trusted_part(suite, p.name)
        row = (content or {}).get("variants", {}).get(name)
        rec = (row or {}).get("per_seed", {}).get(str(seed))
        if rec is not None:
            return int(rec["train_samples"])
    return None


def parts_table(suite: SuiteConfig) -> str:
    files = {p.name: trusted_part(suite, p.name) or {} for p in suite.parts}  # each part file read once
    done = {name for name, content in files.items() if content.get("complete")}
    lines = [
        f"parts of {suite.name!r}, in order (estimates from the suite's time_model, runs/bench/time_model.py; "
        "'cold': the part alone on an empty cache, as in a fresh checkout):"
    ]
    estimates = estimate_parts(suite)
    measured: dict[str, float] = {}  # done parts' own wall time, beside what the time model expected
    for p in suite.parts:
        est = estimates[p.name]
        what = [*(f"lr search {t}" for t in p.lr_search), *p.variants, *(["SASRec"] if p.sasrec else [])]
        rows = ", ".join(what) + (f" (seeds {p.seeds})" if p.seeds else "")
        wall = files[p.name].get("wall_seconds") if p.name in done else None
        if isinstance(wall, int | float) and not isinstance(wall, bool) and wall > 0:
            measured[p.name] = float(wall)
        state = f"done in {wall / 60:.1f} min" if p.name in measured else ("done" if p.name in done else "todo")
        cold = estimate_part(suite, p)
        lines.append(f"  {p.name:<16} ~{est / 60:5.1f} min (cold ~{cold / 60:5.1f})  {state}  {rows}")
    total = sum(estimates.values())
    lines.append(f"  {'total':<16} ~{total / 60:5.1f} min")
    if measured:
        ratio = sum(measured.values()) / max(sum(estimates[n] for n in measured), 1e-9)
        lines.append(
            f"  the done parts took {ratio:.2f}x their estimates here (the time model's rates are the suite's; "
            "a busier machine or a cold frozen-layer cache runs slower)"
        )
    if suite.time_model.plan_samples:
        lines += ["", "the plan at other sizes (ours' A mix + B-set a row; matched rows follow; every seed):"]
        lines.append(plan_table(suite))
    return "\n".join(lines)
