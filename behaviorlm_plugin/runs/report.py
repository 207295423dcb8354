"""The run's markdown report: stage timings, the paper's metric table, plots, selection summary."""

from __future__ import annotations

import json
from pathlib import Path

from behaviorlm_plugin.eval.metrics import PAPER_COLUMNS, SHORT_NAMES
from behaviorlm_plugin.extras.fileio import atomic_write_text


def metric_rows_markdown(rows: dict[str, dict]) -> str:
    head = "| | " + " | ".join(SHORT_NAMES[c] for c in PAPER_COLUMNS) + " | n |"
    lines = [head, "|" + "---|" * (len(PAPER_COLUMNS) + 2)]
    for name, m in rows.items():
        cells = [f"{m[c]:.4f}" if isinstance(m.get(c), float) else "n/a" for c in PAPER_COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {m.get('n', '')} |")
    return "\n".join(lines)


def write_report(run_dir: Path, manifest: dict, cfg) -> Path:
    stages = manifest["stages"]
    lines = [
        f"# BehaviorLM run: `{run_dir}`",
        "",
        f"Model: `{cfg.model_name_or_path}` (template `{cfg.template}`); "
        f"data: `{cfg.dataset_dir}/{cfg.name}`" + ("; **w/o A-Tuning**" if cfg.skip_a_tuning else ""),
        "",
        "## Stages",
        "",
        "| stage | status | wall time (s) |",
        "|---|---|---|",
    ]
    for name, st in stages.items():
        if name == "report":
            continue
        lines.append(f"| {name} | {st.get('status')} | {st.get('seconds', '')} |")
    ev = stages.get("evaluate", {}).get("outputs", {})
    rows = {}
    for key, path in ev.items():
        m = json.loads(Path(path).read_text())
        rows[key.removesuffix("_metrics")] = m
    if rows:
        lines += ["", "## Metrics (BehaviorLM, after B-Tuning)", "", metric_rows_markdown(rows), ""]
        for split in rows:
            rel = Path("eval") / split
            lines += [
                f"### {split}",
                "",
                f"![per-behavior accuracy]({rel / 'per_behavior_accuracy.png'})",
                f"![confusion]({rel / 'confusion.png'})",
                "",
            ]
    sel = stages.get("selection", {}).get("outputs", {}).get("selection")
    if sel and Path(sel).exists():
        rep = json.loads(Path(sel).read_text())
        lines += [
            "## Selection",
            "",
            f"Strategy `{rep['strategy']}`, k = {rep['k']}: scored {rep['scored_total']} "
            f"of a pool of {rep['pool_size']}, picked {rep['picked_total']}.",
            "",
            "| behavior | available | scored | picked | tiers |",
            "|---|---|---|---|---|",
        ]
        for b, v in rep["per_behavior"].items():
            tiers = ", ".join(f"{k} {n}" for k, n in v["tiers"].items())
            lines.append(f"| {b} | {v['available']} | {v['scored']} | {v['picked']} | {tiers} |")
    check = stages.get("export", {}).get("info", {}).get("check")
    if check:
        lines += [
            "",
            "## Export",
            "",
            f"Merged checkpoint `{stages['export']['outputs']['export_dir']}` "
            f"({check.get('merged_dtype', 'float32')}) vs base+adapter in float32 on {check['samples']} samples: "
            f"max |Δ log-prob| = {check['max_abs_diff']:.2e}, max |Δ candidate probability| = "
            f"{check.get('max_prob_diff', float('nan')):.2e}, top-1 agreement {check.get('top1_agreement', 1):.0%} "
            f"(criterion {check.get('criterion', 'max_abs_diff')} <= {check['tolerance']:g}).",
            "",
            f"To merge again: `llamafactory-cli export {run_dir / 'export.yaml'}` (this run's adapter; the recipe "
            "folder's `export.yaml` reads the plain recipes' `saves/`).",
        ]
    path = run_dir / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
