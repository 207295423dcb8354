"""Samples as event indices: windows (last ``history_len`` events -> next), the user split, categories,
each output split's draw and its integer features (prompts and rows: :mod:`.sample_rows`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from behaviorlm_plugin.data.engine import EventTable
from behaviorlm_plugin.data.engine.sample import (
    balanced_positions,
    fetch_windows,
    local_index,
    register_segments,
    target_counts,
    time_segments,
    user_segments,
)
from behaviorlm_plugin.data.events import BehaviorDataError
from behaviorlm_plugin.data.samples import (
    EncodedEvents,
    FrequencyCategories,
    baseline_from_counts,
    categories_from_counts,
    history_indices,
    split_users,
)
from behaviorlm_plugin.extras.constants import USER_SPLITS
from behaviorlm_plugin.hparams.data_args import PrepareArguments


@dataclass
class Windows:
    """The chosen samples: the events of their windows (``enc``), indices into them per output split, and
    what the stats need about every window (counted in the engine, never materialised)."""

    enc: EncodedEvents
    users_per_split: dict[str, int]
    windows_available: dict[str, int]
    cats: FrequencyCategories
    chosen: dict[str, np.ndarray]
    balanced_counts: np.ndarray
    baseline: dict
    behavior_counts: np.ndarray  # every kept event's behavior, by code (the simulator's stats)


def split_rng(args: PrepareArguments, stream: int) -> np.random.Generator:
    # Each split gets its own generator, so capping one split never changes another.
    return np.random.default_rng([args.seed, stream])


def draw(n: int, max_samples: int | None, rng: np.random.Generator) -> np.ndarray:
    """Which of ``n`` targets a capped split keeps (sorted): :func:`samples.subsample` on positions."""
    if max_samples is None or n <= max_samples:
        return np.arange(n, dtype=np.int64)
    return np.sort(rng.choice(n, size=max_samples, replace=False))


def _segments(table: EventTable, args: PrepareArguments, source: str) -> tuple[dict, dict[str, int]]:
    if args.split_by == "time":
        segs = time_segments(table, args.time_split, args.history_len)
        users = {s: len(np.unique(segs[i].user)) for i, s in enumerate(USER_SPLITS)}
    else:
        user_split = split_users(len(table.labels["user_id"]), args.ratios, seed=args.seed)
        segs = user_segments(table, user_split, args.history_len)
        users = {s: int((user_split == i).sum()) for i, s in enumerate(USER_SPLITS)}
    if sum(g.total for g in segs.values()) == 0:
        raise BehaviorDataError(
            f"{source}: no user has more than {args.history_len} events, so no sample can be "
            "built; lower --history_len or add data."
        )
    fix = "--time-split" if args.split_by == "time" else "--split_ratios"
    for i, s in enumerate(USER_SPLITS):
        if segs[i].total == 0:
            raise BehaviorDataError(
                f"{source}: the {s} split has no samples ({len(table.labels['user_id'])} users); add users or "
                f"change {fix}."
            )
    return segs, users


def _balanced_picks(test_counts: np.ndarray, per_class: int, rng: np.random.Generator) -> dict[int, np.ndarray]:
    """Per behavior, which of its targets a balanced split keeps (:func:`samples.balanced_subset`'s draws)."""
    picks = {}
    for c, n in enumerate(test_counts):
        picks[c] = rng.choice(int(n), size=per_class, replace=False) if n > per_class else np.arange(int(n))
    return picks


def build_windows(table: EventTable, args: PrepareArguments, source: str, log=None) -> Windows:
    """Cut windows, split, compute categories and draw each split's samples in the engine; fetch only those."""
    say = log or (lambda _msg: None)
    behaviors = table.labels["behavior"]
    if len(behaviors) < 2:
        raise BehaviorDataError(
            f"{source}: only {len(behaviors)} distinct behavior ({', '.join(map(repr, behaviors))}) among "
            "the kept events; next-behavior prediction needs at least two (check the behavior column or column map)"
        )
    segs, users = _segments(table, args, source)
    register_segments(table, segs)
    say(f"[prepare] 4/4 counting windows and drawing samples ({sum(g.total for g in segs.values()):,} windows)")
    counts = target_counts(table)
    by_label = {
        i: np.bincount(
            counts.b[counts.split == i], weights=counts.n[counts.split == i], minlength=len(behaviors)
        ).astype(np.int64)
        for i in range(3)
    }
    cats = categories_from_counts(
        by_label[0],
        behaviors,
        anchor_threshold=args.anchor_threshold,
        head_threshold=args.head_threshold,
        medium_threshold=args.medium_threshold,
    )
    picked = {
        split: segs[i].locate(draw(segs[i].total, cap, split_rng(args, i + 1)))
        for i, (split, cap) in enumerate(
            (("train_all", args.max_train_samples), ("val", args.max_val_samples), ("test", args.max_test_samples))
        )
    }
    picks = _balanced_picks(by_label[2], args.balanced_per_class, split_rng(args, 4))
    picked["test_balanced"] = balanced_positions(table, picks)
    # val_balanced: the same draw on val users, on a stream of its own (the other splits keep their bytes).
    val_picks = _balanced_picks(by_label[1], args.balanced_per_class, split_rng(args, 5))
    picked["val_balanced"] = balanced_positions(table, val_picks, split=1)
    # train_pool: selection's pool, every behavior's share of the train users' windows (a stream of its own).
    pool_picks = _balanced_picks(by_label[0], args.pool_per_class, split_rng(args, 6))
    picked["train_pool"] = balanced_positions(table, pool_picks, split=0)
    users_all = np.concatenate([u for u, _ in picked.values()])
    pos_all = np.concatenate([p for _, p in picked.values()])
    enc, keys = fetch_windows(table, users_all, pos_all, args.history_len)
    chosen = {split: local_index(keys, u, p) for split, (u, p) in picked.items()}
    return Windows(
        enc=enc,
        users_per_split=users,
        windows_available={s: segs[i].total for i, s in enumerate(USER_SPLITS)},
        cats=cats,
        chosen=chosen,
        balanced_counts=np.array([len(picks[c]) for c in range(len(behaviors))], dtype=np.int64),
        baseline=baseline_from_counts(counts, behaviors, len(table.labels["place"])),
        behavior_counts=table.behavior_events(),
    )


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
