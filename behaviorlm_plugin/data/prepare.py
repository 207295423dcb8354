"""``behaviorlm prepare``: events -> samples -> prompts -> registered LLaMA-Factory datasets (orchestration only).

Writes, under ``dataset_dir/NAME/``:

* ``train_all``, ``train_anchor``, ``train_tail``, ``val``, ``test``, ``test_balanced``
  (alpaca JSONL) each with a ``.meta.jsonl`` sidecar aligned line by line (id, user,
  label, categories, candidate list, format) for scoring and selection, and a
  ``.features.npz`` of the same samples for non-LLM baselines;
* ``aux`` (ShareGPT, the filtered auxiliary conversations) and ``atuning_mix``
  (ShareGPT: train_anchor + exactly round(λ·|train_anchor|) aux conversations);
* ``stats.json`` (read back through :class:`behaviorlm_plugin.data.dataset.DatasetStats`);

and registers ``NAME_<split>`` entries in ``dataset_dir/dataset_info.json``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from behaviorlm_plugin.data import aux_data
from behaviorlm_plugin.data.dataset import DatasetError, DatasetStats
from behaviorlm_plugin.data.events import BehaviorDataError
from behaviorlm_plugin.data.loaders import load_source
from behaviorlm_plugin.data.prompts import PromptOptions, load_prompt_format_file, render_prompts, system_prompt
from behaviorlm_plugin.data.registry import check_registration, make_entry, register_datasets
from behaviorlm_plugin.data.samples import (
    EncodedEvents,
    FrequencyCategories,
    balanced_subset,
    context_baseline,
    encode_events,
    frequency_categories,
    history_indices,
    split_users,
    subsample,
    window_targets,
)
from behaviorlm_plugin.data.simulator import PAPER_BEHAVIOR_PROPORTIONS, total_variation
from behaviorlm_plugin.extras.constants import (
    ALL_SPLITS,
    AUX_SPLIT,
    BEHAVIOR_SPLITS,
    FEATURE_SPLITS,
    FEATURES_SUFFIX,
    MIX_SPLIT,
    STATS_FILE,
    USER_SPLITS,
)
from behaviorlm_plugin.extras.fileio import atomic_write_json, atomic_write_jsonl
from behaviorlm_plugin.hparams.data_args import PrepareArguments

logger = logging.getLogger(__name__)

__all__ = ["ALL_SPLITS", "BEHAVIOR_SPLITS", "dataset_entries", "ensure_prepared", "prepare"]


def dataset_entries(name: str) -> dict[str, dict]:
    """The dataset_info.json entries ``prepare`` registers for ``name``."""
    entries = {f"{name}_{s}": make_entry(f"{name}/{s}.jsonl", "alpaca") for s in BEHAVIOR_SPLITS}
    for s in (AUX_SPLIT, MIX_SPLIT):
        entries[f"{name}_{s}"] = make_entry(f"{name}/{s}.jsonl", "sharegpt")
    return entries


@dataclass
class Windows:
    """Samples as event indices: every window's target, by user split, and the chosen ones per output split."""

    enc: EncodedEvents
    user_split: np.ndarray
    by_split: dict[str, np.ndarray]
    cats: FrequencyCategories
    chosen: dict[str, np.ndarray]
    balanced_counts: np.ndarray


def _rng(args: PrepareArguments, stream: int) -> np.random.Generator:
    # Each split gets its own generator, so capping one split never changes another.
    return np.random.default_rng([args.seed, stream])


def build_windows(df: pd.DataFrame, args: PrepareArguments, source: str) -> Windows:
    """Encode events, cut windows, split users, compute categories and draw each split's samples."""
    enc = encode_events(df)
    targets = window_targets(enc.user, args.history_len)
    if len(targets) == 0:
        raise BehaviorDataError(
            f"{source}: no user has more than {args.history_len} events, so no sample can be "
            "built; lower --history_len or add data."
        )
    user_split = split_users(len(enc.users), args.ratios, seed=args.seed)
    target_split = user_split[enc.user[targets]]
    by_split = {s: targets[target_split == i] for i, s in enumerate(USER_SPLITS)}
    for s, arr in by_split.items():
        if len(arr) == 0:
            raise BehaviorDataError(
                f"{source}: the {s} split has no samples ({len(enc.users)} users); add users or change --split_ratios."
            )
    cats = frequency_categories(
        enc.behavior[by_split["train"]],
        enc.behaviors,
        anchor_threshold=args.anchor_threshold,
        head_threshold=args.head_threshold,
        medium_threshold=args.medium_threshold,
    )
    chosen = {
        "train_all": subsample(by_split["train"], args.max_train_samples, _rng(args, 1)),
        "val": subsample(by_split["val"], args.max_val_samples, _rng(args, 2)),
        "test": subsample(by_split["test"], args.max_test_samples, _rng(args, 3)),
    }
    chosen["test_balanced"], balanced = balanced_subset(
        by_split["test"], enc.behavior, len(enc.behaviors), args.balanced_per_class, _rng(args, 4)
    )
    return Windows(enc, user_split, by_split, cats, chosen, balanced)


def _sample_rows(
    enc: EncodedEvents,
    targets: np.ndarray,
    args: PrepareArguments,
    split: str,
    cats,
    rng: np.random.Generator,
    options: PromptOptions,
    system: str,
) -> tuple[list[dict], list[dict]]:
    hist = history_indices(targets, args.history_len)
    prompts, fmts, cands = render_prompts(enc, targets, hist, rng, options)
    records, metas = [], []
    for i, t in enumerate(targets):
        label = enc.behaviors[enc.behavior[t]]
        sid = f"{args.name}-{split}-{i:06d}"
        records.append({"id": sid, "instruction": prompts[i], "input": "", "output": label, "system": system})
        metas.append(
            {
                "id": sid,
                "user_id": enc.users[enc.user[t]],
                "timestamp": str(pd.Timestamp(enc.timestamp[t])),
                "label": label,
                "anchor_tail": cats.anchor_tail[label],
                "head_medium_tail": cats.head_medium_tail[label],
                "format": fmts[i],
                "candidates": cands[i],
            }
        )
    return records, metas


def render_splits(w: Windows, args: PrepareArguments) -> dict[str, tuple[list[dict], list[dict]]]:
    """(records, metas) of every behavior split; train_anchor/train_tail are train_all by category."""
    for path in (args.prompt_template_files or "").split(","):
        if path.strip():
            load_prompt_format_file(path.strip(), overwrite=True)
    options = PromptOptions(formats=args.format_list, shuffle_candidates=not args.fixed_candidate_order)
    system = system_prompt()
    rows = {}
    for i, split in enumerate(FEATURE_SPLITS):
        rows[split] = _sample_rows(w.enc, w.chosen[split], args, split, w.cats, _rng(args, 10 + i), options, system)
    recs, metas = rows["train_all"]
    anchor_mask = [m["anchor_tail"] == "anchor" for m in metas]
    for split, keep in (("train_anchor", True), ("train_tail", False)):
        rows[split] = (
            [r for r, a in zip(recs, anchor_mask, strict=True) if a == keep],
            [m for m, a in zip(metas, anchor_mask, strict=True) if a == keep],
        )
    return rows


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


def _load_tokenizer(args: PrepareArguments):
    if not args.tokenizer:
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(args.tokenizer)


def build_aux(args: PrepareArguments, anchor_records: list[dict], tokenizer) -> tuple[list[dict], list[dict], dict]:
    """(kept aux conversations, the A-Tuning mix, the stats' aux section)."""
    count = aux_data.tokenizer_counter(tokenizer) if tokenizer else aux_data.approx_token_count
    pool = aux_data.load_conversations(args.aux_file)
    kept, dropped = aux_data.filter_by_tokens(pool, args.aux_max_tokens, count)
    mix, info = aux_data.build_atuning_mix(
        anchor_records, kept, aux_ratio=args.aux_ratio, anchors=args.mix_anchor_samples, seed=args.seed
    )
    stats = {
        "file": str(args.aux_file or aux_data.default_aux_path().name),
        "loaded": len(pool),
        "dropped_over_token_budget": dropped,
        "kept": len(kept),
        "max_tokens": args.aux_max_tokens,
        "token_counter": "tokenizer" if tokenizer else "approx",
        "ratio": args.aux_ratio,
        "used_in_mix": info["aux"],
        "pool_repeats": info["aux_pool_repeats"],
        "mix_anchor_samples": info["anchors"],
        "mix_size": info["n"],
        "exact_ratio": (info["aux"] / info["anchors"]) if info["anchors"] else 0.0,
    }
    return kept, mix, stats


def write_dataset(base: Path, w: Windows, args: PrepareArguments, rows, aux_kept: list[dict], mix: list[dict]) -> None:
    for split in FEATURE_SPLITS:
        write_features(base / f"{split}{FEATURES_SUFFIX}", w.enc, w.chosen[split], args.history_len)
    for split in BEHAVIOR_SPLITS:
        recs, metas = rows[split]
        atomic_write_jsonl(base / f"{split}.jsonl", recs)
        atomic_write_jsonl(base / f"{split}.meta.jsonl", metas)
    atomic_write_jsonl(base / f"{AUX_SPLIT}.jsonl", aux_kept)
    atomic_write_jsonl(base / f"{MIX_SPLIT}.jsonl", mix)


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
    all_counts = pd.Series(np.bincount(enc.behavior, minlength=len(enc.behaviors)), index=list(enc.behaviors))
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
            "users": {s: int((w.user_split == i).sum()) for i, s in enumerate(USER_SPLITS)},
            "user_overlap": _user_overlap(enc, w.chosen),
            "windows_available": {s: len(v) for s, v in w.by_split.items()},
            "samples_written": {s: len(rows[s][0]) for s in BEHAVIOR_SPLITS},
            "test_balanced_per_behavior": {b: int(c) for b, c in zip(enc.behaviors, w.balanced_counts, strict=True)},
        },
        "baselines": context_baseline(enc, w.by_split["train"], w.by_split["test"]),
        "aux": aux_stats,
        "prompt_lengths": {
            split: _token_stats(
                [r["system"] + "\n" + r["instruction"] for r in rows[split][0]],
                tokenizer,
                args.token_stats_samples,
                _rng(args, 20 + i),
            )
            for i, split in enumerate(("train_all", "test_balanced"))
        },
        "prompt_formats": list(args.format_list),
    }
    if args.synthetic:
        stats["synthetic"] = _synthetic_stats(w)
    return stats


def prepare(args: PrepareArguments) -> dict:
    """Run the whole preparation; returns the stats dict (also written to stats.json)."""
    t0 = time.perf_counter()
    out_dir = Path(args.dataset_dir)
    entries = dataset_entries(args.name)
    check_registration(out_dir, entries, overwrite=args.overwrite)  # fail before any work or write
    timings: dict[str, float] = {}

    def lap(key: str, since: float) -> float:
        now = time.perf_counter()
        timings[key] = now - since
        return now

    df, source_stats = load_source(args)
    t = lap("load_events_s", t0)
    windows = build_windows(df, args, source_stats["source"])
    t = lap("windows_s", t)
    rows = render_splits(windows, args)
    t = lap("render_prompts_s", t)
    tokenizer = _load_tokenizer(args)
    aux_kept, mix, aux_stats = build_aux(args, rows["train_anchor"][0], tokenizer)
    t = time.perf_counter()
    base = out_dir / args.name
    write_dataset(base, windows, args, rows, aux_kept, mix)
    lap("write_s", t)
    stats = build_stats(windows, args, source_stats, rows, aux_stats, tokenizer)
    timings["total_s"] = time.perf_counter() - t0
    stats["timings"] = {k: round(v, 3) for k, v in timings.items()}
    atomic_write_json(base / STATS_FILE, stats)
    register_datasets(dataset_dir=out_dir, entries=entries, overwrite=args.overwrite)
    return stats


def ensure_prepared(args: PrepareArguments, log=print) -> bool:
    """Prepare unless ``DIR/NAME/stats.json`` already records exactly these arguments.

    Returns True when the existing data was reused.  Used by the pipeline and the benchmark,
    so a shared dataset is never rebuilt (and never silently reused with other arguments).
    """
    stats_path = Path(args.dataset_dir) / args.name / STATS_FILE
    if stats_path.exists():
        try:
            existing = DatasetStats.read(stats_path).arguments
        except DatasetError as err:
            log(f"[prepare] {err}; re-preparing")
            existing = {}
        if existing == asdict(args):
            log(f"[prepare] {stats_path} already has these arguments; not re-preparing")
            return True
        changed = sorted(k for k in set(existing) | set(asdict(args)) if existing.get(k) != asdict(args).get(k))
        log(f"[prepare] {stats_path.parent} was prepared with other arguments ({', '.join(changed)}); re-preparing")
    prepare(args)
    return False


def write_features(path: Path, enc: EncodedEvents, targets: np.ndarray, history_len: int) -> None:
    """Integer features of the same samples, line-aligned with the JSONL, for non-LLM baselines (SASRec)."""
    hist = history_indices(targets, history_len)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez_compressed(
        tmp,
        hist_behavior=enc.behavior[hist].astype(np.int16),
        hist_place=enc.place[hist].astype(np.int32),
        hist_dow=enc.dow[hist].astype(np.int8),
        hist_hour=enc.hour[hist].astype(np.int8),
        next_dow=enc.dow[targets].astype(np.int8),
        next_hour=enc.hour[targets].astype(np.int8),
        next_place=enc.place[targets].astype(np.int32),
        label=enc.behavior[targets].astype(np.int16),
        behaviors=np.array(enc.behaviors),
        places=np.array(enc.places),
    )
    tmp.replace(path)


def _user_overlap(enc: EncodedEvents, chosen: dict[str, np.ndarray]) -> dict[str, int]:
    users = {s: set(np.unique(enc.user[t]).tolist()) for s, t in chosen.items()}
    test_users = users["test"] | users["test_balanced"]
    return {
        "train_val": len(users["train_all"] & users["val"]),
        "train_test": len(users["train_all"] & test_users),
        "val_test": len(users["val"] & test_users),
    }
