"""Samples as event indices: windows (last ``history_len`` events -> next), the user split, categories,
each output split's draw, its rendered prompts and its integer features."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from behaviorlm_plugin.data.events import BehaviorDataError
from behaviorlm_plugin.data.prompts import PromptOptions, load_prompt_format_file, render_prompts, system_prompt
from behaviorlm_plugin.data.samples import (
    EncodedEvents,
    FrequencyCategories,
    balanced_subset,
    encode_events,
    frequency_categories,
    history_indices,
    split_users,
    subsample,
    window_targets,
)
from behaviorlm_plugin.extras.constants import FEATURE_SPLITS, USER_SPLITS
from behaviorlm_plugin.hparams.data_args import PrepareArguments


@dataclass
class Windows:
    """Samples as event indices: every window's target, by user split, and the chosen ones per output split."""

    enc: EncodedEvents
    user_split: np.ndarray
    by_split: dict[str, np.ndarray]
    cats: FrequencyCategories
    chosen: dict[str, np.ndarray]
    balanced_counts: np.ndarray


def split_rng(args: PrepareArguments, stream: int) -> np.random.Generator:
    # Each split gets its own generator, so capping one split never changes another.
    return np.random.default_rng([args.seed, stream])


def build_windows(df: pd.DataFrame, args: PrepareArguments, source: str) -> Windows:
    """Encode events, cut windows, split users, compute categories and draw each split's samples."""
    enc = encode_events(df)
    if len(enc.behaviors) < 2:
        raise BehaviorDataError(
            f"{source}: only {len(enc.behaviors)} distinct behavior ({', '.join(map(repr, enc.behaviors))}) among "
            "the kept events; next-behavior prediction needs at least two (check the behavior column or column map)"
        )
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
        "train_all": subsample(by_split["train"], args.max_train_samples, split_rng(args, 1)),
        "val": subsample(by_split["val"], args.max_val_samples, split_rng(args, 2)),
        "test": subsample(by_split["test"], args.max_test_samples, split_rng(args, 3)),
    }
    chosen["test_balanced"], balanced = balanced_subset(
        by_split["test"], enc.behavior, len(enc.behaviors), args.balanced_per_class, split_rng(args, 4)
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
        rows[split] = _sample_rows(
            w.enc, w.chosen[split], args, split, w.cats, split_rng(args, 10 + i), options, system
        )
    recs, metas = rows["train_all"]
    anchor_mask = [m["anchor_tail"] == "anchor" for m in metas]
    for split, keep in (("train_anchor", True), ("train_tail", False)):
        rows[split] = (
            [r for r, a in zip(recs, anchor_mask, strict=True) if a == keep],
            [m for m, a in zip(metas, anchor_mask, strict=True) if a == keep],
        )
    return rows


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
