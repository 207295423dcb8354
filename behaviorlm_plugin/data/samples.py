"""(last-H events, next event) samples: windowing, user split, frequency categories.

All transforms are pure functions over integer-coded numpy arrays, so windowing a
few million events takes well under a second.  A sample is the index of its target
event ``t``; its history is events ``t-H … t-1`` of the same user (events are sorted
by user then time, so those indices are contiguous).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class EncodedEvents:
    """Integer-coded events (sorted by user, time) plus the label vocabularies."""

    user: np.ndarray  # int64 user code per event
    behavior: np.ndarray  # int64 behavior code per event
    place: np.ndarray  # int64 place code per event
    dow: np.ndarray  # 0=Monday
    hour: np.ndarray
    timestamp: np.ndarray  # datetime64[ns]
    users: tuple[str, ...]
    behaviors: tuple[str, ...]
    places: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.user)


def encode_events(df: pd.DataFrame) -> EncodedEvents:
    """Code a validated events frame (sorted by user, time) as integer arrays."""
    user = pd.Categorical(df["user_id"])
    behavior = pd.Categorical(df["behavior"])
    place = pd.Categorical(df["place"])
    ts = pd.DatetimeIndex(df["timestamp"])
    codes = user.codes.astype(np.int64)
    if len(codes) > 1 and (np.diff(codes) < 0).any() and not _grouped(codes):
        raise ValueError("events must be grouped by user and sorted by time (use events.validate_events)")
    return EncodedEvents(
        user=codes,
        behavior=behavior.codes.astype(np.int64),
        place=place.codes.astype(np.int64),
        dow=ts.dayofweek.to_numpy().astype(np.int64),
        hour=ts.hour.to_numpy().astype(np.int64),
        timestamp=ts.to_numpy(),
        users=tuple(str(u) for u in user.categories),
        behaviors=tuple(str(b) for b in behavior.categories),
        places=tuple(str(p) for p in place.categories),
    )


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` of an integer array by sorting (numpy 2.4's hash-based unique is ~80x slower on millions)."""
    out = np.sort(np.asarray(values).ravel())
    if len(out) > 1:
        out = out[np.concatenate([[True], out[1:] != out[:-1]])]
    return out


def _grouped(codes: np.ndarray) -> bool:
    """True when each user's events are contiguous (codes need not be ascending)."""
    change = np.flatnonzero(np.diff(codes)) + 1
    return len(np.unique(codes[np.concatenate([[0], change])])) == len(change) + 1


def window_targets(user: np.ndarray, history_len: int) -> np.ndarray:
    """Indices of events that have ``history_len`` earlier events of the same user.

    Vectorised: an event at position ``t`` qualifies iff ``user[t - H] == user[t]``
    (users are contiguous, so the whole span belongs to that user).
    """
    if history_len < 1:
        raise ValueError(f"history_len must be >= 1, got {history_len}")
    n = len(user)
    if n <= history_len:
        return np.empty(0, dtype=np.int64)
    t = np.arange(history_len, n, dtype=np.int64)
    return t[user[t - history_len] == user[t]]


def history_indices(targets: np.ndarray, history_len: int) -> np.ndarray:
    """[n_samples, H] event indices of each sample's history, oldest first."""
    return targets[:, None] - history_len + np.arange(history_len, dtype=np.int64)[None, :]


def split_users(n_users: int, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0) -> np.ndarray:
    """Assign every user code to 0=train, 1=val, 2=test; seeded, no user in two splits."""
    if len(ratios) != 3 or min(ratios) < 0 or not np.isclose(sum(ratios), 1.0):
        raise ValueError(f"split ratios must be three non-negative numbers summing to 1, got {ratios}")
    perm = np.random.default_rng(seed).permutation(n_users)
    cut1 = round(ratios[0] * n_users)
    cut2 = cut1 + round(ratios[1] * n_users)
    split = np.empty(n_users, dtype=np.int64)
    split[perm[:cut1]], split[perm[cut1:cut2]], split[perm[cut2:]] = 0, 1, 2
    return split


@dataclass(frozen=True)
class FrequencyCategories:
    """Training-split label frequencies and the categories derived from them.

    ``anchor`` (> anchor_threshold) vs ``tail`` drives A-/B-Tuning;
    ``head`` (> head_threshold) / ``medium`` / ``tail`` (< medium_threshold) drives metrics.
    """

    counts: dict[str, int]
    frequency: dict[str, float]
    anchor_tail: dict[str, str]
    head_medium_tail: dict[str, str]
    anchor_threshold: float
    head_threshold: float
    medium_threshold: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def frequency_categories(
    labels: np.ndarray,
    behaviors: tuple[str, ...],
    *,
    anchor_threshold: float = 0.01,
    head_threshold: float = 0.05,
    medium_threshold: float = 0.01,
) -> FrequencyCategories:
    """Categories from training labels (codes into ``behaviors``).

    A behavior never seen in training has frequency 0 and is ``tail`` in both schemes.
    """
    counts = np.bincount(labels, minlength=len(behaviors))
    return categories_from_counts(
        counts,
        behaviors,
        anchor_threshold=anchor_threshold,
        head_threshold=head_threshold,
        medium_threshold=medium_threshold,
    )


def categories_from_counts(
    counts: np.ndarray,
    behaviors: tuple[str, ...],
    *,
    anchor_threshold: float = 0.01,
    head_threshold: float = 0.05,
    medium_threshold: float = 0.01,
) -> FrequencyCategories:
    """:func:`frequency_categories` from the training label counts (by code) instead of the labels."""
    if not 0 <= medium_threshold <= head_threshold <= 1:
        raise ValueError("thresholds must satisfy 0 <= medium_threshold <= head_threshold <= 1")
    counts = np.asarray(counts, dtype=np.int64)
    freq = counts / max(1, counts.sum())
    anchor = {b: ("anchor" if f > anchor_threshold else "tail") for b, f in zip(behaviors, freq, strict=True)}
    hmt = {
        b: ("head" if f > head_threshold else "medium" if f >= medium_threshold else "tail")
        for b, f in zip(behaviors, freq, strict=True)
    }
    return FrequencyCategories(
        counts={b: int(c) for b, c in zip(behaviors, counts, strict=True)},
        frequency={b: float(f) for b, f in zip(behaviors, freq, strict=True)},
        anchor_tail=anchor,
        head_medium_tail=hmt,
        anchor_threshold=anchor_threshold,
        head_threshold=head_threshold,
        medium_threshold=medium_threshold,
    )


def subsample(targets: np.ndarray, max_samples: int | None, rng: np.random.Generator) -> np.ndarray:
    """Seeded random subset (kept in event order); ``None`` keeps all."""
    if max_samples is None or len(targets) <= max_samples:
        return targets
    return np.sort(rng.choice(targets, size=max_samples, replace=False))


def balanced_subset(
    targets: np.ndarray, labels: np.ndarray, n_classes: int, per_class: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``per_class`` targets of each label; returns (targets, count per class)."""
    picked, got = [], np.zeros(n_classes, dtype=np.int64)
    for c in range(n_classes):
        pool = targets[labels[targets] == c]
        if len(pool) > per_class:
            pool = rng.choice(pool, size=per_class, replace=False)
        got[c] = len(pool)
        picked.append(pool)
    out = np.sort(np.concatenate(picked)) if picked else np.empty(0, dtype=np.int64)
    return out, got


def context_baseline(enc: EncodedEvents, train_targets: np.ndarray, test_targets: np.ndarray) -> dict[str, float]:
    """Accuracy of 'most frequent behavior given (hour, place)' vs the global majority class.

    Both are fit on training targets only; an unseen (hour, place) falls back to the
    majority class.  A learnable dataset must beat the majority baseline.
    """
    n_b, n_p = len(enc.behaviors), len(enc.places)
    key_tr = enc.hour[train_targets] * n_p + enc.place[train_targets]
    table = np.zeros((24 * n_p, n_b), dtype=np.int64)
    np.add.at(table, (key_tr, enc.behavior[train_targets]), 1)
    majority = int(np.bincount(enc.behavior[train_targets], minlength=n_b).argmax())
    best = np.where(table.sum(1) > 0, table.argmax(1), majority)
    y = enc.behavior[test_targets]
    pred = best[enc.hour[test_targets] * n_p + enc.place[test_targets]]
    return {
        "majority_class": enc.behaviors[majority],
        "majority_accuracy": float((y == majority).mean()) if len(y) else float("nan"),
        "hour_place_accuracy": float((pred == y).mean()) if len(y) else float("nan"),
        "evaluated_on": "test split, all windows",
        "n": len(y),
    }


def baseline_from_counts(counts: pd.DataFrame, behaviors: tuple[str, ...], n_places: int) -> dict[str, float]:
    """:func:`context_baseline` from target counts per (split, b, hour, p) (0 = train, 2 = test), as the engine
    gives them; sparse in (hour, place), so a log with many places needs no dense table."""
    n_b = len(behaviors)
    train, test = counts[counts["split"] == 0], counts[counts["split"] == 2]
    majority = int(np.bincount(train["b"], weights=train["n"], minlength=n_b).argmax())
    cell = train.assign(key=train["hour"] * n_places + train["p"]).groupby(["key", "b"], as_index=False)["n"].sum()
    best = cell.sort_values(["key", "n", "b"], ascending=[True, False, True]).drop_duplicates("key")
    best_of = dict(zip(best["key"].tolist(), best["b"].tolist(), strict=True))
    keys = (test["hour"] * n_places + test["p"]).to_numpy()
    pred = np.array([best_of.get(int(k), majority) for k in keys], dtype=np.int64)
    n = int(test["n"].sum())
    y, w = test["b"].to_numpy(), test["n"].to_numpy()
    return {
        "majority_class": behaviors[majority],
        "majority_accuracy": float(w[y == majority].sum() / n) if n else float("nan"),
        "hour_place_accuracy": float(w[pred == y].sum() / n) if n else float("nan"),
        "evaluated_on": "test split, all windows",
        "n": n,
    }
