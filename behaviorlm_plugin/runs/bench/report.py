"""The bench's ``report.md`` and terminal table, built from ``results.json`` alone (so ``--report-only`` works)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from behaviorlm_plugin.eval.metrics import REPORT_COLUMNS, format_table
from behaviorlm_plugin.extras.fileio import atomic_write_json, atomic_write_text
from behaviorlm_plugin.runs.bench.evidence import CI_COLUMNS, class_counts, oracle_best, oracle_best_point
from behaviorlm_plugin.runs.bench.plots import write_plots
from behaviorlm_plugin.runs.bench.results import best_baseline, efficiency_curves, sweep_rows, verdict

COLS = [c for c, _, _ in REPORT_COLUMNS]
SWEEP_SECTIONS = (
    ("aux_ratio", "Aux ratio λ sweep", "lambda_sweep.png"),
    ("k", "k sweep", "k_sweep.png"),
    ("anchors", "Anchor-count sweep", "anchors_sweep.png"),
)


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


def _alpha(v: dict) -> str:
    a = v.get("alpha") or 0.0
    if any("alpha_choice" in r for r in v.get("per_seed", {}).values()):  # chosen on val, per seed
        return f"auto: {a:.2g}"
    return f"{a:g}"


def _versus(results: dict, ours: dict, best: dict) -> list[str]:
    """Ours against the best baseline per column: the gain and the verdict (bootstrap CI when there is one)."""
    variants, boot = results["variants"], results.get("bootstrap") or {}
    rel = []
    for c in COLS:
        b = best[c]
        if b is None or ours["mean"][c] is None or not variants[b]["mean"][c]:
            rel.append("n/a")
            continue
        gain = (ours["mean"][c] - variants[b]["mean"][c]) / variants[b]["mean"][c]
        ci = boot.get(b, {}).get(c)
        mirror = {"win": "loss", "loss": "win"}  # the table holds row - ours; ours vs row flips it
        v = mirror.get(ci["verdict"], ci["verdict"]) if ci else verdict(ours, variants[b], c)
        rel.append(f"{gain:+.1%} ({v})")
    return rel


def _primary(results: dict) -> list[str]:
    """The pre-registered comparisons first: intervals over users and seeds, Holm-adjusted verdicts."""
    table = results.get("primary_table") or {}
    if not table:
        return []
    pre = results.get("preregistration") or {}
    when = (
        f"pre-registered in `{pre.get('file')}` at commit `{(pre.get('commit') or '?')[:12]}` ({pre.get('date')})"
        + (" — the file has uncommitted changes, so this run is **not** the pre-registered design" if pre.get(
            "uncommitted_changes") else "")
        if pre
        else "pre-registration unknown (not run from a git checkout)"
    )  # fmt: skip
    lines = [
        f"## Primary comparisons ({when})",
        "",
        f"Row − {results['ours']}; 95% intervals resampling users and seeds; Holm-corrected over these "
        f"{len(table)} comparisons. `tail_at_matched_head`: the row's test_balanced tail accuracy at "
        f"{results['ours']}'s val head accuracy (`eval/curves.py`). Every other table is exploratory.",
        "",
        "| comparison | delta | 95% CI | p | p (Holm) | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in table.items():
        ci = "n/a" if r.get("ci95") is None else f"[{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}]"
        delta = "n/a" if r.get("delta") is None else f"{r['delta']:+.3f}"
        p = "n/a" if r.get("p") is None else f"{r['p']:.3f}"
        ph = "n/a" if r.get("p_holm") is None else f"{r['p_holm']:.3f}"
        lines.append(f"| {name} | {delta} | {ci} | {p} | {ph} | {r.get('verdict', 'n/a')} |")
    return [*lines, ""]


def _labels_read(v: dict) -> str:
    """Training samples plus the pool labels selection read (mean over seeds); n/a in results written before."""
    per = [r for r in v.get("per_seed", {}).values() if "labels_read" in r]
    if not per:
        return "n/a"
    return f"{sum(r['train_samples'] + r['labels_read'] for r in per) / len(per):.0f}"


def _main_table(results: dict, ours: dict) -> list[str]:
    variants, ours_name = results["variants"], results["ours"]
    ceiling = oracle_best(results)
    lines = [
        "## Main table (mean ± std over seeds)",
        "",
        "| variant | seeds | train samples | labels seen | α | " + " | ".join(COLS) + " | Acc_avg / oracle best |",
        "|---|---|---|---|---|" + "---|" * (len(COLS) + 1),
    ]
    for n, v in variants.items():
        if v["group"] in ("baseline", "ours", "oracle"):
            name = f"**{n}**" if n == ours_name else n
            cells = " | ".join(_cell(v, c) for c in COLS)
            acc = v["mean"].get("Acc_avg")
            frac = f"{acc / ceiling:.0%}" if ceiling and acc is not None else "n/a"
            read = _labels_read(v)
            lines.append(
                f"| {name} | {v['seeds']} | {v['train_samples']:.0f} | {read} | {_alpha(v)} | {cells} | {frac} |"
            )
    best = {c: best_baseline(results, c) for c in COLS}
    lines.append("| best baseline | | | | | " + " | ".join(best[c] or "n/a" for c in COLS) + " | |")
    lines.append(f"| {ours_name} vs best baseline | | | | | " + " | ".join(_versus(results, ours, best)) + " | |")
    counts = class_counts(results)
    count_text = ", ".join(f"{c} {d['classes']} classes / {d['samples']} samples" for c, d in sorted(counts.items()))
    return [
        *lines,
        "",
        "α is the row's decision rule, score − α·log prior (0 = plain argmax; auto = chosen on val). The best "
        "baseline excludes the oracle, which is a ceiling, not a rival. "
        + (f"Class means (Acc_avg, head, medium, tail) are over: {count_text}. " if counts else "")
        + (
            "A verdict is a win or loss only when the paired bootstrap 95% interval of the difference excludes 0; "
            "otherwise it is *within noise*."
            if results.get("bootstrap")
            else "A difference counts as a win or loss only when it is larger than the two rows' seed standard "
            "deviations added together; otherwise it is *within noise*."
        ),
        "",
    ]


def _resampled(boot: dict) -> str:
    """What the bootstrap resampled (users and seeds; results written before: evaluation samples)."""
    for row in boot.values():
        for cell in row.values():
            if cell.get("resampled"):
                return {"samples": "evaluation samples", "users": "users"}.get(
                    cell["resampled"], cell["resampled"].replace("samples", "evaluation samples")
                )
    return "evaluation samples"


def _bootstrap(results: dict) -> list[str]:
    boot = results.get("bootstrap") or {}
    if not boot:
        return []
    cols = [c for c, _, _ in CI_COLUMNS]
    lines = [
        f"## Against {results['ours']}: paired bootstrap (row − {results['ours']}, 95% CI resampling "
        f"{_resampled(boot)})",
        "",
        "| variant | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for name, row in boot.items():
        cells = []
        for c in cols:
            r = row.get(c)
            if not r or r.get("ci95") is None:
                cells.append("n/a")
                continue
            lo, hi = r["ci95"]
            cells.append(f"{100 * r['delta']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] {r['verdict']}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return [*lines, "", "In points; the verdict is the row's against ours (win: the row is better).", ""]


def _frontier(results: dict) -> list[str]:
    pts = results.get("oracle_frontier") or []
    if not pts:
        return []
    best = oracle_best_point(results)
    on = "val Acc_avg" if best and best.get("val_Acc_avg") is not None else "test_balanced Acc_avg (no val scored)"
    keep = [p for p in pts if p["alpha"] in (0.0, 0.5, 1.0)] + ([best] if best["alpha"] not in (0.0, 0.5, 1.0) else [])
    lines = [
        "## Oracle frontier (the simulator's true distribution on the same samples)",
        "",
        "| α | " + " | ".join(COLS) + " |",
        "|---|" + "---|" * len(COLS),
    ]
    for p in sorted(keep, key=lambda p: p["alpha"]):
        cells = " | ".join("n/a" if p.get(c) is None else f"{p[c]:.3f}" for c in COLS)
        lines.append(f"| {p['alpha']:g}{f' (best {on})' if p is best else ''} | {cells} |")
    note = (
        "The frontier (α from 0 to 1.2) is the curve in `tail_vs_head.png`: the clairvoyant scores under one α "
        "each. It is a reference, not a bound: a rule that weighs classes otherwise (medium classes at zero "
        "weight, say) can lie beyond it, and no single α expresses that. Its best α is picked on val."
    )
    return [*lines, "", note, ""]


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


def _lr_search(results: dict) -> list[str]:
    search = results.get("lr_search") or {}
    targets = [t for t in ("a_tuning", "full_ft") if t in search]
    if not targets:
        return []
    lines = [
        f"## Learning-rate search on val (seed {search['spec']['seed']}; the winner is reused by every row and seed)",
        "",
        "| target | lr | val accuracy | val Acc_avg | |",
        "|---|---|---|---|---|",
    ]
    for t in targets:
        for trial in search[t]["trials"]:
            acc, avg = trial["val_accuracy"], trial["val_acc_avg"]
            won = "winner" if trial["lr"] == search[t]["best"] else ""
            lines.append(f"| {t} | {trial['lr']:g} | {_fmt(acc)} | {_fmt(avg)} | {won} |")
    return [*lines, ""]


def _parts(results: dict) -> list[str]:
    parts = results.get("parts")
    if not parts:
        return []
    return [f"Parts done: {', '.join(parts['done']) or 'none'}; missing: {', '.join(parts['missing']) or 'none'}.", ""]


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
    note = [results["note"], ""] if results.get("note") else []
    lines = [
        *note,
        *_header(results),
        *_primary(results),
        *_parts(results),
        *_main_table(results, ours),
        *_bootstrap(results),
        *_frontier(results),
        *_ablations(results, ours),
        *_sweeps(results),
        *_sasrec(results),
        *_lr_search(results),
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
