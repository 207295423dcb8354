"""The run's markdown report: stage timings, the paper's metric table, plots, selection summary."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from behaviorlm_plugin.eval.metrics import PAPER_COLUMNS, SHORT_NAMES
from behaviorlm_plugin.extras.fileio import atomic_write_text


def metric_rows_markdown(rows: dict[str, dict]) -> str:
    head = "| | " + " | ".join(SHORT_NAMES[c] for c in PAPER_COLUMNS) + " | n |"
    lines = [head, "|" + "---|" * (len(PAPER_COLUMNS) + 2)]
    for name, m in rows.items():
        cells = [f"{m[c]:.4f}" if isinstance(m.get(c), float) else "n/a" for c in PAPER_COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {m.get('n', '')} |")
    return "\n".join(lines)


def evaluation_rows(manifest: dict) -> tuple[dict[str, dict], dict[str, dict]]:
    """The model's metrics per split, and the reference rows per split, from the evaluate stage's outputs."""
    ev = manifest["stages"].get("evaluate", {}).get("outputs", {})
    read = lambda p: json.loads(Path(p).read_text())  # noqa: E731
    rows = {k.removesuffix("_metrics"): read(p) for k, p in ev.items() if k.endswith("_metrics")}
    refs = {k.removesuffix("_reference"): read(p) for k, p in ev.items() if k.endswith("_reference")}
    return rows, refs


def samples_seen(run_dir: Path, stage: str) -> int | None:
    """Training samples a stage went through: optimizer steps × batch × accumulation (LLaMA-Factory's
    ``trainer_state.json`` and the stage's YAML), or None when the stage left no record."""
    state, recipe = run_dir / stage / "trainer_state.json", run_dir / f"{stage}.yaml"
    if not state.is_file() or not recipe.is_file():
        return None
    st = json.loads(state.read_text())
    accum = int((yaml.safe_load(recipe.read_text()) or {}).get("gradient_accumulation_steps", 1))
    if st.get("global_step") is None or st.get("train_batch_size") is None:
        return None
    return int(st["global_step"]) * int(st["train_batch_size"]) * accum


def plain_words(
    rows: dict[str, dict], refs: dict[str, dict], *, cpu: bool = True, samples: dict[str, int | None] | None = None
) -> str:
    """A few sentences a newcomer can read: how the model compares with the reference rows, and how far a
    figure on this many samples can be trusted."""
    out = []
    for split, m in rows.items():
        n, wr, avg = m.get("n") or 0, m.get("weighted_recall"), m.get("acc_avg")
        ref = refs.get(split, {})
        half = 1.96 * (max(wr or 0.0, 0.05) * (1 - (wr or 0.0)) / max(n, 1)) ** 0.5
        text = (
            f"On `{split}` ({n} samples) the model's accuracy (wR) is {wr:.3f} and its class-mean accuracy "
            f"(Acc_avg) {avg:.3f}; with {n} samples a wR differs from the truth by about ±{half:.2f} (95%)."
        )
        for name in ("zero-shot", "majority", "hour+place"):
            r = ref.get(name)
            if r and r.get("weighted_recall") is not None:
                d_wr = (wr or 0) - r["weighted_recall"]
                d_avg = (avg or 0) - (r.get("acc_avg") or 0)
                text += f" Against {name}: wR {_signed(d_wr)}, Acc_avg {_signed(d_avg)}."
        out.append(text)
    caveat = "A model that beats the majority on wR but not on Acc_avg has learned the frequent behaviors only."
    if cpu:
        seen = {k: v for k, v in (samples or {}).items() if v is not None}
        amount = (
            f"{sum(seen.values())} training samples ({', '.join(f'{k}: {v}' for k, v in seen.items())})"
            if seen
            else "a few training samples"
        )
        out.append(
            f"This CPU run is a miniature: a small model tuned for a few minutes on {amount}, so it shows that "
            f"every stage works end to end, not what the method achieves. {caveat} The benchmark at "
            "full size, on a GPU, is in `docs/results/` (see docs/benchmark.md)."
        )
    else:
        out.append(
            f"{caveat} Rows against tail-aware rivals, with bootstrap verdicts: `behaviorlm bench` (docs/benchmark.md)."
        )
    return "\n\n".join(out)


def _signed(x: float) -> str:
    return f"{x:+.3f}"


def write_report(run_dir: Path, manifest: dict, cfg, *, cpu: bool = True) -> Path:
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
    rows, refs = evaluation_rows(manifest)
    if rows:
        lines += ["", "## Metrics (BehaviorLM, after B-Tuning)", "", metric_rows_markdown(rows), ""]
        for split, ref in refs.items():
            table = {"BehaviorLM": rows[split], **ref}
            lines += [
                f"### {split}: the model beside the reference rows, same samples",
                "",
                metric_rows_markdown(table),
                "",
            ]
        seen = {stage: samples_seen(run_dir, stage) for stage in ("a_tuning", "b_tuning")}
        lines += ["## What these figures mean", "", plain_words(rows, refs, cpu=cpu, samples=seen), ""]
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
