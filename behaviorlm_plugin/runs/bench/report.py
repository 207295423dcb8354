"""The bench's ``report.md`` and terminal table, built from ``results.json`` alone (so ``--report-only`` works)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from behaviorlm_plugin.eval.metrics import REPORT_COLUMNS, format_table
from behaviorlm_plugin.extras.fileio import atomic_write_json, atomic_write_text
from behaviorlm_plugin.runs.bench.plots import write_plots
from behaviorlm_plugin.runs.bench.results import best_baseline, efficiency_curves, sweep_rows, verdict

COLS = [c for c, _, _ in REPORT_COLUMNS]
SWEEP_SECTIONS = (("aux_ratio", "Aux ratio λ sweep", "lambda_sweep.png"), ("k", "k sweep", "k_sweep.png"))


def _cell(summary: dict, col: str) -> str:
    m, s = summary["mean"].get(col), summary["std"].get(col)
    if m is None:
        return "n/a"
    return f"{m:.3f} ± {s:.3f}" if summary["seeds"] > 1 else f"{m:.3f}"


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _caps_text(ev: dict) -> str:
    def caps(s: str) -> str:
        return ", ".join(f"{k}={v}" for k, v in (ev.get(s) or {}).items() if v is not None) or "all"

    return "; ".join(f"{s}: {caps(s)}" for s in ev.get("splits", []))


def _header(results: dict) -> list[str]:
    m = results["machine"]
    return [
        f"# Benchmark `{results['suite']}`",
        "",
        f"Model `{results['model']}` (template `{results['template']}`), data "
        f"`{results['data']['dataset_dir']}/{results['data']['name']}`, seeds {results['seeds']}. "
        f"wP and wR are on `test`, the class means on `test_balanced` (caps: {_caps_text(results['evaluation'])}).",
        "",
        f"Machine: {m['platform']}, {m['cpus']} CPUs, GPU {m.get('gpu') or 'none'}; Python {m['python']}, torch "
        f"{m['torch']}, transformers {m['transformers']}, peft {m['peft']}, llamafactory {m['llamafactory']}. "
        f"Wall time {results['wall_seconds'] / 60:.1f} min."
        + ("" if results.get("complete", True) else " **Partial results: the run has not finished.**"),
        "",
    ]


def _main_table(results: dict, ours: dict) -> list[str]:
    variants, ours_name = results["variants"], results["ours"]
    lines = [
        "## Main table (mean ± std over seeds)",
        "",
        "| variant | seeds | train samples | " + " | ".join(COLS) + " |",
        "|---|---|---|" + "---|" * len(COLS),
    ]
    for n, v in variants.items():
        if v["group"] in ("baseline", "ours"):
            name = f"**{n}**" if n == ours_name else n
            cells = " | ".join(_cell(v, c) for c in COLS)
            lines.append(f"| {name} | {v['seeds']} | {v['train_samples']:.0f} | {cells} |")
    best = {c: best_baseline(results, c) for c in COLS}
    lines.append("| best baseline | | | " + " | ".join(best[c] or "n/a" for c in COLS) + " |")
    rel = []
    for c in COLS:
        b = best[c]
        if b is None or ours["mean"][c] is None or not variants[b]["mean"][c]:
            rel.append("n/a")
            continue
        gain = (ours["mean"][c] - variants[b]["mean"][c]) / variants[b]["mean"][c]
        rel.append(f"{gain:+.1%} ({verdict(ours, variants[b], c)})")
    lines.append(f"| {ours_name} vs best baseline | | | " + " | ".join(rel) + " |")
    return [
        *lines,
        "",
        "A difference counts as a win or loss only when it is larger than the two rows' seed standard deviations "
        "added together; otherwise it is *within noise*.",
        "",
    ]


def _ablations(results: dict, ours: dict) -> list[str]:
    variants, ours_name = results["variants"], results["ours"]
    rows = [n for n, v in variants.items() if v["group"] == "ablation"]
    if not rows:
        return []
    lines = [
        "## Ablations (Δ against " + ours_name + ", in points)",
        "",
        "| variant | " + " | ".join(COLS) + " |",
        "|---|" + "---|" * len(COLS),
        f"| {ours_name} | " + " | ".join(_cell(ours, c) for c in COLS) + " |",
    ]
    for n in rows:
        v = variants[n]
        cells = [
            "n/a"
            if v["mean"][c] is None or ours["mean"][c] is None
            else f"{_cell(v, c)} ({100 * (v['mean'][c] - ours['mean'][c]):+.1f})"
            for c in COLS
        ]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _sweeps(results: dict) -> list[str]:
    lines = []
    for param, title, plot in SWEEP_SECTIONS:
        rows = sweep_rows(results, param)
        if not rows:
            continue
        lines += [
            f"## {title}",
            "",
            f"| variant | {param} | train samples | " + " | ".join(COLS) + " |",
            "|---|---|---|" + "---|" * len(COLS),
        ]
        for name, v in rows:
            cells = " | ".join(_cell(v, c) for c in COLS)
            lines.append(f"| {name} | {_fmt(v['sweep']['value'])} | {v['train_samples']:.0f} | {cells} |")
        lines += ["", f"![{title}]({plot})", ""]
    return lines


def _sasrec(results: dict) -> list[str]:
    lines = []
    if results.get("sasrec_search"):
        seed, first = next(iter(results["sasrec_search"].items()))
        keys = [k for k in first["trials"][0] if k != "seconds"]
        lines += [f"## SASRec search (seed {seed})", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        for t in first["trials"]:
            lines.append("| " + " | ".join(_fmt(t[k]) for k in keys) + " |")
        best = {k: first["best_config"][k] for k in ("lr", "d_model", "pre_ln")}
        lines += ["", f"Best: `{json.dumps(best)}`.", ""]
    if results.get("sasrec_curve"):
        lines += ["## Sample efficiency", "", "| model | train samples | wR | tail |", "|---|---|---|---|"]
        for series, pts in efficiency_curves(results).items():
            for n, summary in pts:
                lines.append(f"| {series} | {n:.0f} | {_cell(summary, 'wR')} | {_cell(summary, 'tail')} |")
        lines += ["", "![sample efficiency](sample_efficiency.png)", ""]
    return lines


def _steps(results: dict) -> list[str]:
    lines = [
        "## Tail against head",
        "",
        "![tail vs head](tail_vs_head.png)",
        "",
        "## Steps",
        "",
        "| step | runs | cache hits | seconds run | seconds saved by the cache |",
        "|---|---|---|---|---|",
    ]
    for k, d in results["steps"].items():
        lines.append(f"| {k} | {d['runs']} | {d['cache_hits']} | {d['seconds_run']:.0f} | {d['seconds_saved']:.0f} |")
    return lines


def report_markdown(results: dict) -> str:
    empty = {"mean": dict.fromkeys(COLS), "std": dict.fromkeys(COLS), "seeds": 0}
    ours = results["variants"].get(results["ours"], empty)  # absent only in a partial (still running) results.json
    lines = [
        *_header(results),
        *_main_table(results, ours),
        *_ablations(results, ours),
        *_sweeps(results),
        *_sasrec(results),
        *_steps(results),
    ]
    return "\n".join(lines) + "\n"


def terminal_table(results: dict) -> str:
    rows = {n: {c: v["mean"][c] for c in COLS} for n, v in results["variants"].items()}
    return format_table(rows, columns=COLS)


def write_outputs(out_dir: str | Path, results: dict) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", results)
    write_plots(results, out)
    atomic_write_text(out / "report.md", report_markdown(results))
    return out


def backfill_sweeps(results: dict, suite) -> int:
    """Give rows of a results.json written before rows carried ``sweep`` their {param, value}, taken from the
    suite's config (matched by row name); returns how many rows were filled."""
    points = {v.name: v.sweep for v in suite.variants if v.sweep is not None}
    filled = 0
    for name, row in results["variants"].items():
        if row.get("group") == "sweep" and not row.get("sweep") and name in points:
            row["sweep"] = {"param": points[name].param, "value": points[name].value}
            filled += 1
    return filled


def rerender(out_dir: str | Path, suite=None) -> Path:
    """Rebuild report.md and plots from an existing results.json (no model runs).

    With the suite, rows of an older results.json get their sweep points from its config, and the
    file is rewritten in the current format.
    """
    out = Path(out_dir)
    results = json.loads((out / "results.json").read_text())
    if suite is not None and backfill_sweeps(results, suite):
        atomic_write_json(out / "results.json", results)
    write_plots(results, out)
    atomic_write_text(out / "report.md", report_markdown(results))
    return out
