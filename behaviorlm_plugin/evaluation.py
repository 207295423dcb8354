"""Predict and evaluate: preds.jsonl, metrics.json, the paper's table and plots.

``predict`` reads a prepared split (alpaca JSONL + its ``.meta.jsonl`` sidecar), ranks every
candidate with the exact scorer (or parses greedy generations, for comparison) and writes
one JSON line per sample.  ``evaluate`` turns such a file plus the dataset's ``stats.json``
(training-split frequency categories) into metrics.

Under ``torchrun`` (``WORLD_SIZE`` > 1) prediction is data-parallel: rank ``r`` scores
samples ``r, r+W, …`` and rank 0 merges the parts in the original order.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .fileio import atomic_write_json, atomic_write_jsonl, read_jsonl
from .metrics import PAPER_COLUMNS, classification_metrics, format_table, ranking_metrics


class EvaluationError(ValueError):
    """Bad evaluation input; the message names the file and the fix."""


@dataclass
class PredictArguments:
    r"""Arguments of ``behaviorlm predict``.

    Model: model, adapter, template
    Data: data, max_samples
    Output: out, top_k
    Method and speed: method, batch_size, max_length, max_new_tokens, device
    """

    model: str = field(metadata={"help": "Base (or merged) model: HF folder or hub id."})
    data: str = field(metadata={"help": "A prepared split, e.g. data/behavior/test_balanced.jsonl (+ .meta.jsonl)."})
    out: str = field(metadata={"help": "Output preds.jsonl."})
    adapter: str | None = field(default=None, metadata={"help": "LoRA adapter folder (peft) on top of --model."})
    template: str | None = field(
        default="auto",
        metadata={
            "help": "LLaMA-Factory template used in training (smollm2, llama3, qwen…); 'auto' reads the "
            "default model's marker, else the tokenizer's chat template; 'none' forces the latter."
        },
    )
    top_k: int = field(default=5, metadata={"help": "Ranked candidates to keep per sample (0 = all)."})
    method: Literal["score", "generate"] = field(
        default="score", metadata={"help": "score: exact candidate ranking; generate: greedy text parsed."}
    )
    batch_size: int = field(default=4, metadata={"help": "Prompts per forward pass."})
    max_length: int = field(default=2048, metadata={"help": "Max prompt + answer tokens."})
    max_new_tokens: int = field(default=16, metadata={"help": "Generation length (method=generate)."})
    max_samples: int | None = field(
        default=None, metadata={"help": "A seeded random subset of N samples (kept in file order)."}
    )
    max_per_class: int | None = field(
        default=None, metadata={"help": "At most N samples per true behavior (seeded), e.g. for a quick balanced run."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the subsets above."})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda."})

    def __post_init__(self) -> None:
        if self.top_k < 0:
            raise ValueError("--top_k must be >= 0")
        for key in ("max_samples", "max_per_class"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ValueError(f"--{key} must be >= 1")


def load_split(
    path: str | Path, max_samples: int | None = None, max_per_class: int | None = None, seed: int = 0
) -> tuple[list[dict], list[dict]]:
    """A prepared split and its metadata sidecar, checked to be line-aligned, optionally subsampled.

    Subsets are seeded random draws (per class first, then overall) returned in file order.
    """
    path = Path(path)
    meta_path = path.with_name(path.name.removesuffix(".jsonl") + ".meta.jsonl")
    if not path.is_file():
        raise EvaluationError(f"{path}: data file not found")
    if not meta_path.is_file():
        raise EvaluationError(
            f"{meta_path}: metadata sidecar not found; --data must be a split written by `behaviorlm prepare`"
        )
    recs, metas = read_jsonl(path), read_jsonl(meta_path)
    if len(recs) != len(metas):
        raise EvaluationError(f"{path} has {len(recs)} rows but {meta_path} has {len(metas)}; re-run prepare")
    for i, (r, m) in enumerate(zip(recs, metas, strict=True)):
        if r.get("id") != m.get("id") or "candidates" not in m:
            raise EvaluationError(f"{meta_path}: row {i} does not match {path} (id {r.get('id')!r}); re-run prepare")
    import numpy as np

    keep = np.random.default_rng(seed).permutation(len(recs))
    if max_per_class is not None:
        seen: dict[str, int] = {}
        picked = []
        for i in keep:
            label = metas[i]["label"]
            if seen.get(label, 0) < max_per_class:
                seen[label] = seen.get(label, 0) + 1
                picked.append(i)
        keep = np.array(picked, dtype=int)
    if max_samples is not None:
        keep = keep[:max_samples]
    if max_per_class is None and max_samples is None:
        return recs, metas
    keep = np.sort(keep)
    return [recs[i] for i in keep], [metas[i] for i in keep]


def _resolve_template(args: PredictArguments) -> str | None:
    if args.template in (None, "none"):
        return None
    if args.template != "auto":
        return args.template
    from .model import MARKER

    marker = Path(args.model) / MARKER
    if marker.is_file():
        return json.loads(marker.read_text()).get("template")
    return None


def _dist() -> tuple[int, int]:
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def predict(args: PredictArguments) -> list[dict] | None:
    """Write ``args.out``; returns the rows (on rank 0; ``None`` on other ranks)."""
    from .scoring import CandidateScorer

    recs, metas = load_split(args.data, args.max_samples, args.max_per_class, args.seed)
    rank, world = _dist()
    if world > 1:
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    mine = list(range(rank, len(recs), world))
    device = args.device
    if world > 1 and device in ("auto", "cuda"):
        import torch

        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available() else "cpu"
    scorer = CandidateScorer.from_pretrained(
        args.model,
        args.adapter,
        batch_size=args.batch_size,
        max_length=args.max_length,
        device=device,
        template=_resolve_template(args),
        show_progress=rank == 0,
    )
    prompts = [(recs[i].get("system"), recs[i]["instruction"]) for i in mine]
    cands = [metas[i]["candidates"] for i in mine]
    labels = [metas[i]["label"] for i in mine]
    t0 = time.perf_counter()
    rows = []
    if args.method == "score":
        preds = scorer.predict(prompts, cands, labels=labels, ids=[recs[i]["id"] for i in mine], k=args.top_k or 10**9)
        for i, p in zip(mine, preds, strict=True):
            rows.append(
                _row(
                    metas[i],
                    p.label,
                    [{"behavior": b, "prob": pr} for b, pr in p.top_k],
                    p.true_prob,
                    p.true_rank,
                    "score",
                )
            )
    else:
        gens = scorer.generate(prompts, cands, max_new_tokens=args.max_new_tokens)
        for i, g in zip(mine, gens, strict=True):
            row = _row(
                metas[i], g.label, [{"behavior": g.label, "prob": 1.0}] if g.label else [], None, None, "generate"
            )
            row.update(raw_output=g.raw, valid=g.label is not None)
            rows.append(row)
    seconds = time.perf_counter() - t0
    out = Path(args.out)
    if world == 1:
        atomic_write_jsonl(out, rows)
        _write_run_info(out, args, len(rows), seconds, world)
        return rows
    import torch.distributed as dist

    part = out.with_name(f"{out.name}.rank{rank}")
    atomic_write_jsonl(part, rows)
    dist.barrier()
    merged = None
    if rank == 0:
        parts = [read_jsonl(out.with_name(f"{out.name}.rank{r}")) for r in range(world)]
        merged = [parts[i % world][i // world] for i in range(len(recs))]
        atomic_write_jsonl(out, merged)
        for r in range(world):
            out.with_name(f"{out.name}.rank{r}").unlink()
        _write_run_info(out, args, len(merged), seconds, world)
    dist.barrier()
    dist.destroy_process_group()
    return merged


def _row(meta: dict, pred: str | None, ranked: list[dict], true_prob, true_rank, method: str) -> dict:
    return {
        "id": meta["id"],
        "label": meta["label"],
        "prediction": pred,
        "correct": pred == meta["label"],
        "true_prob": true_prob,
        "true_rank": true_rank,
        "ranked": ranked,
        "method": method,
        "anchor_tail": meta.get("anchor_tail"),
        "head_medium_tail": meta.get("head_medium_tail"),
        "user_id": meta.get("user_id"),
        "format": meta.get("format"),
        "n_candidates": len(meta["candidates"]),
    }


def _write_run_info(out: Path, args: PredictArguments, n: int, seconds: float, world: int) -> None:
    info = {
        "samples": n,
        "seconds": round(seconds, 3),
        "samples_per_second": n / seconds if seconds else None,
        "processes": world,
        "arguments": vars(args),
    }
    atomic_write_json(out.with_name(out.name.removesuffix(".jsonl") + ".run.json"), info)


# ----------------------------------------------------------------------------- evaluation
def load_categories(stats_path: str | Path) -> tuple[dict[str, str], dict[str, float], list[str]]:
    """head/medium/tail per behavior, training frequency, and the full behavior list, from stats.json."""
    path = Path(stats_path)
    if not path.is_file():
        raise EvaluationError(f"{path}: stats.json not found; pass the one `behaviorlm prepare` wrote")
    stats = json.loads(path.read_text())
    if "behaviors" not in stats:
        raise EvaluationError(f"{path}: has no 'behaviors' section; is this a BehaviorLM stats.json?")
    beh = stats["behaviors"]
    return (
        {b: v["head_medium_tail"] for b, v in beh.items()},
        {b: v["train_frequency"] for b, v in beh.items()},
        list(beh),
    )


def evaluate_predictions(preds: list[dict], stats_path: str | Path) -> dict:
    """The metric dict for ``preds`` (rows of preds.jsonl)."""
    if not preds:
        raise EvaluationError("no predictions to evaluate")
    cats, freq, behaviors = load_categories(stats_path)
    y_true = [p["label"] for p in preds]
    # An invalid generation counts as wrong; it never matches a real label.
    y_pred = [p["prediction"] if p["prediction"] is not None else "<invalid>" for p in preds]
    m = classification_metrics(y_true, y_pred, {**cats, "<invalid>": "tail"}, all_labels=behaviors)
    m["per_behavior"].pop("<invalid>", None)
    for b, v in m["per_behavior"].items():
        v["train_frequency"] = freq.get(b)
    if preds[0].get("method") == "score":
        kept = min(len(p["ranked"]) for p in preds)  # --top-k bounds which HR@k/NDCG@k can be computed
        ks = tuple(k for k in (1, 3, 5) if k <= kept)
        m.update(ranking_metrics([[r["behavior"] for r in p["ranked"]] for p in preds], y_true, ks=ks))
    else:
        m["invalid_rate"] = sum(p["prediction"] is None for p in preds) / len(preds)
    m["method"] = preds[0].get("method")
    return m


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


def evaluate_file(preds_path: str | Path, stats_path: str | Path, out_dir: str | Path, name: str = "model") -> dict:
    """metrics.json + two plots in ``out_dir``; prints the paper's table."""
    preds = read_jsonl(preds_path)
    m = evaluate_predictions(preds, stats_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    m["predictions_file"] = str(preds_path)
    atomic_write_json(out_dir / "metrics.json", m)
    _, _, behaviors = load_categories(stats_path)
    th = json.loads(Path(stats_path).read_text())["categories"]["thresholds"]
    plot_per_behavior(m, out_dir / "per_behavior_accuracy.png", (th["medium"], th["head"]))
    plot_confusion(preds, behaviors, out_dir / "confusion.png")
    return m


def evaluate_splits(
    *, model: str, adapter: str | None, template: str | None, data_base: Path, evaluation: dict, out_dir: Path
) -> dict[str, dict]:
    """Predict and score each split of ``evaluation`` (the pipeline/bench block: ``splits``, per-split caps
    ``{split: {max_samples, max_per_class}}``, ``batch_size``, ``seed``) into ``out_dir/<split>/``."""
    results = {}
    for split in evaluation.get("splits", []):
        lim = evaluation.get(split, {})
        preds = out_dir / split / "preds.jsonl"
        predict(
            PredictArguments(
                model=model,
                adapter=adapter,
                template=template,
                data=str(data_base / f"{split}.jsonl"),
                out=str(preds),
                top_k=0,
                max_samples=lim.get("max_samples"),
                max_per_class=lim.get("max_per_class"),
                batch_size=evaluation.get("batch_size", 4),
                seed=evaluation.get("seed", 0),
            )
        )
        results[split] = evaluate_file(preds, data_base / "stats.json", out_dir / split, name=split)
    return results


def summary_text(m: dict, name: str) -> str:
    lines = [format_table({name: m}, PAPER_COLUMNS)]
    extra = {k: m[k] for k in ("hr@1", "hr@3", "hr@5", "ndcg@3", "ndcg@5", "invalid_rate") if k in m}
    if extra:
        lines.append("  " + "  ".join(f"{k}={v:.4f}" for k, v in extra.items()))
    lines.append(
        f"  samples={m['n']}  classes with test samples: head {m['n_classes_head']}, "
        f"medium {m['n_classes_medium']}, tail {m['n_classes_tail']}"
    )
    if m["classes_without_test_samples"]:
        lines.append(f"  no test samples (not scored): {', '.join(m['classes_without_test_samples'])}")
    return "\n".join(lines)
