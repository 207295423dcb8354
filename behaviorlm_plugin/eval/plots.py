"""Per-evaluation plots: accuracy against training frequency, and the confusion matrix."""

from __future__ import annotations

from pathlib import Path


def plot_per_behavior(metrics: dict, out: Path, thresholds: tuple[float, float] = (0.01, 0.05)) -> None:
    """Per-behavior accuracy against training frequency (log x), colored by category."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"head": "tab:blue", "medium": "tab:orange", "tail": "tab:red"}
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for b, v in metrics["per_behavior"].items():
        f = v.get("train_frequency") or 1e-6
        ax.scatter(f, v["accuracy"], color=colors.get(v["category"], "gray"), s=18 + 2 * v["support"] ** 0.5)
        if v["accuracy"] > 0:  # zero-accuracy labels would pile up on the x axis; they are counted below
            ax.annotate(b, (f, v["accuracy"]), fontsize=6, xytext=(3, 2), textcoords="offset points")
    for cat, c in colors.items():
        ax.scatter([], [], color=c, label=cat)
    medium, head = thresholds
    for x, text in ((medium, f"{medium:.0%}: tail | medium"), (head, f"{head:.0%}: medium | head")):
        ax.axvline(x, color="gray", linestyle="--", linewidth=0.8)
        ax.annotate(text, (x, 1.0), fontsize=7, color="gray", rotation=90, va="top", ha="right")
    ax.set_xscale("log")
    ax.set_xlabel("training frequency (log)")
    ax.set_ylabel("accuracy (recall)")
    ax.set_ylim(-0.03, 1.03)
    zero = sum(v["accuracy"] == 0 for v in metrics["per_behavior"].values())
    ax.set_title(f"Per-behavior accuracy vs training frequency ({zero} behaviors at 0, unlabelled)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(out, dpi=130)
    plt.close(fig)


def plot_confusion(preds: list[dict], behaviors: list[str], out: Path) -> None:
    """Row-normalised confusion heat map (true behavior rows, predicted columns), frequency order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    idx = {b: i for i, b in enumerate(behaviors)}
    n = len(behaviors)
    cm = np.zeros((n, n + 1))
    for p in preds:
        if p["label"] in idx:
            cm[idx[p["label"]], idx.get(p["prediction"], n)] += 1
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    if not norm[:, n].any():
        norm = norm[:, :n]
    fig, ax = plt.subplots(figsize=(11, 10))
    im = ax.imshow(norm, cmap="viridis", vmin=0, vmax=1)
    ax.set_yticks(range(n), behaviors, fontsize=6)
    ax.set_xticks(
        range(norm.shape[1]), behaviors + (["<invalid>"] if norm.shape[1] > n else []), fontsize=6, rotation=90
    )
    ax.set_ylabel("true")
    ax.set_xlabel("predicted")
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    fig.savefig(out, dpi=130)
    plt.close(fig)
