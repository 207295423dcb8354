"""The ``stats.json`` of a prepared dataset (read back through ``data/dataset.py``'s ``DatasetStats``)."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd

from behaviorlm_plugin.data import aux_data
from behaviorlm_plugin.data.samples import EncodedEvents, sorted_unique
from behaviorlm_plugin.data.simulator import PAPER_BEHAVIOR_PROPORTIONS, total_variation
from behaviorlm_plugin.data.windows import Windows, split_rng
from behaviorlm_plugin.extras.constants import BEHAVIOR_SPLITS, SYNTHETIC_CANARY
from behaviorlm_plugin.hparams.data_args import PrepareArguments


def _token_stats(texts: list[str], tokenizer, n: int, rng: np.random.Generator) -> dict:
    if not texts:
        return {}
    pick = rng.choice(len(texts), size=min(n, len(texts)), replace=False)
    if tokenizer is None:
        lengths = np.array([aux_data.approx_token_count(texts[i]) for i in pick])
        unit = "approx_tokens (no --tokenizer given)"
    else:
        count = aux_data.tokenizer_counter(tokenizer)
        lengths = np.array([count(texts[i]) for i in pick])
        unit = f"tokens ({getattr(tokenizer, 'name_or_path', 'tokenizer')})"
    q = np.percentile(lengths, [50, 90, 99])
    return {
        "unit": unit,
        "measured": len(pick),
        "mean": float(lengths.mean()),
        "p50": float(q[0]),
        "p90": float(q[1]),
        "p99": float(q[2]),
        "max": int(lengths.max()),
    }


def _categories_stats(w: Windows, args: PrepareArguments) -> dict:
    train_labels = pd.Series(w.cats.counts)
    anchors = [b for b, c in w.cats.anchor_tail.items() if c == "anchor"]
    return {
        "thresholds": {"anchor": args.anchor_threshold, "head": args.head_threshold, "medium": args.medium_threshold},
        "anchors": anchors,
        "n_anchor": len(anchors),
        "n_tail": len(w.enc.behaviors) - len(anchors),
        "anchor_share_of_train": float(train_labels[anchors].sum() / max(1, train_labels.sum())),
        "head_medium_tail_counts": pd.Series(w.cats.head_medium_tail).value_counts().to_dict(),
    }


def _synthetic_stats(w: Windows) -> dict:
    enc = w.enc
    all_counts = pd.Series(w.behavior_counts, index=list(enc.behaviors))
    anchors = [b for b, f in PAPER_BEHAVIOR_PROPORTIONS.items() if f > 0.01]
    return {
        "tv_distance_to_paper": total_variation(all_counts.to_dict(), PAPER_BEHAVIOR_PROPORTIONS),
        "tv_distance_train_to_paper": total_variation(w.cats.counts, PAPER_BEHAVIOR_PROPORTIONS),
        "anchor_share_all_events": float(all_counts[anchors].sum() / all_counts.sum()),
    }


def build_stats(w: Windows, args: PrepareArguments, source_stats: dict, rows, aux_stats: dict, tokenizer) -> dict:
    """The ``stats.json`` mapping (timings are added by :func:`prepare`)."""
    cats, enc = w.cats, w.enc
    stats = {
        "name": args.name,
        "source": source_stats,
        "arguments": asdict(args),
        "behaviors": {
            b: {
                "train_count": cats.counts[b],
                "train_frequency": cats.frequency[b],
                "anchor_tail": cats.anchor_tail[b],
                "head_medium_tail": cats.head_medium_tail[b],
                "test_balanced_count": int(w.balanced_counts[i]),
            }
            for i, b in enumerate(enc.behaviors)
        },
        "categories": _categories_stats(w, args),
        "splits": {
            "by": args.split_by,
            "users": dict(w.users_per_split),
            "user_overlap": _user_overlap(enc, w.chosen),
            "windows_available": dict(w.windows_available),
            "samples_written": {s: len(rows[s][0]) for s in BEHAVIOR_SPLITS},
            "test_balanced_per_behavior": {b: int(c) for b, c in zip(enc.behaviors, w.balanced_counts, strict=True)},
        },
        "baselines": w.baseline,
        "aux": aux_stats,
        "prompt_lengths": {
            split: _token_stats(
                [r["system"] + "\n" + r["instruction"] for r in rows[split][0]],
                tokenizer,
                args.token_stats_samples,
                split_rng(args, 20 + i),
            )
            for i, split in enumerate(("train_all", "test_balanced"))
        },
        "prompt_formats": list(args.format_list),
    }
    if args.synthetic == SYNTHETIC_CANARY:
        stats["canary"] = {"rule": args.canary_rule, "behaviors": len(enc.behaviors)}
    elif args.synthetic:
        stats["synthetic"] = _synthetic_stats(w)
    return stats


def _user_overlap(enc: EncodedEvents, chosen: dict[str, np.ndarray]) -> dict[str, int]:
    users = {s: set(sorted_unique(enc.user[t]).tolist()) for s, t in chosen.items()}
    test_users = users["test"] | users["test_balanced"]
    val_users = users["val"] | users.get("val_balanced", set())
    return {
        "train_val": len(users["train_all"] & val_users),
        "train_test": len(users["train_all"] & test_users),
        "val_test": len(val_users & test_users),
    }
