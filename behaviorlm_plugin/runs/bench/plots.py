"""Bench plots: tail against head, the sweeps, and sample efficiency."""

from __future__ import annotations

from pathlib import Path

from behaviorlm_plugin.runs.bench.results import efficiency_curves, sweep_rows

SWEEP_PLOTS = (
    ("aux_ratio", "aux ratio λ", "lambda_sweep.png"),
    ("k", "k per behavior", "k_sweep.png"),
    ("anchors", "A-Tuning anchors", "anchors_sweep.png"),
)


def write_plots(results: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants, written = results["variants"], []

    def save(fig, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=120)
        plt.close(fig)
        written.append(name)

    save(_tail_head_figure(variants, results.get("oracle_frontier") or []), "tail_vs_head.png")

    for param, xlabel, name in SWEEP_PLOTS:
        rows = sweep_rows(results, param)
        if rows:
            save(_sweep_figure([v for _, v in rows], xlabel), name)

    if results.get("sasrec_curve"):
        save(_efficiency_figure(results), "sample_efficiency.png")
    return written


def _tail_head_figure(variants: dict, frontier: list[dict]):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 6))
    pts = [
        (p["head"], p["tail"], p["alpha"]) for p in frontier if p.get("head") is not None and p.get("tail") is not None
    ]
    if pts:  # the oracle's head/tail points as alpha goes 0 -> 1.2: a reference, not a bound (docs/evaluation.md)
        ax.plot([h for h, _, _ in pts], [t for _, t, _ in pts], "-", color="grey", alpha=0.7, label="oracle frontier")
        for h, t, a in pts:
            if a in (0.0, 0.5, 1.0):
                ax.annotate(f"α={a:g}", (h, t), fontsize=7, color="grey", xytext=(-4, -10), textcoords="offset points")
        ax.legend(loc="upper right", fontsize=8)
    labels: dict[tuple[float, float], list[str]] = {}
    for name, v in variants.items():
        h, t = v["mean"].get("head"), v["mean"].get("tail")
        if h is None or t is None:
            continue
        marker = {"ours": "*", "baseline": "o", "ablation": "s", "sweep": ".", "oracle": "D"}[v["group"]]
        ax.errorbar(
            h,
            t,
            xerr=v["std"]["head"] or 0,
            yerr=v["std"]["tail"] or 0,
            fmt=marker,
            capsize=3,
            markersize=12 if v["group"] == "ours" else 6,
        )
        labels.setdefault((round(h, 4), round(t, 4)), []).append(name)
    for (h, t), names in labels.items():  # rows on the same point share one label instead of overprinting
        ax.annotate("\n".join(names), (h, t), fontsize=7, xytext=(4, 3), textcoords="offset points", va="bottom")
    ax.set_xlabel("head accuracy (test_balanced)")
    ax.set_ylabel("tail accuracy (test_balanced)")
    ax.set_title("Tail vs head accuracy (mean ± std over seeds), with the oracle frontier")
    return fig


def _sweep_figure(rows: list[dict], xlabel: str):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [r["sweep"]["value"] for r in rows]
    for col in ("wR", "Acc_avg", "head", "tail"):
        ys = [r["mean"][col] for r in rows]
        if any(y is None for y in ys):
            continue
        ax.errorbar(xs, ys, yerr=[r["std"][col] or 0 for r in rows], marker="o", capsize=3, label=col)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy")
    ax.legend()
    return fig


def _efficiency_figure(results: dict):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    curves = efficiency_curves(results)
    for ax, col in zip(axes, ("wR", "tail"), strict=True):
        for series, pts in curves.items():
            pts = [(n, p) for n, p in pts if p["mean"][col] is not None]
            ax.errorbar(
                [n for n, _ in pts],
                [p["mean"][col] for _, p in pts],
                yerr=[p["std"][col] or 0 for _, p in pts],
                marker="o" if series == "SASRec" else "s",
                linestyle="-" if series == "SASRec" else "--",
                capsize=3,
                label=series,
            )
        ax.set_xscale("log")
        ax.set_xlabel("training samples")
        ax.set_ylabel(f"{col} accuracy")
        ax.set_title(col)
        ax.legend(fontsize=8)
    return fig
