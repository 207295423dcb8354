"""The one typed reader of a prepared dataset: its paths, its splits and its ``stats.json``.

Everything downstream of ``prepare`` (selection, prediction, evaluation, SASRec, the pipeline
and the bench) reads a dataset through :class:`PreparedDataset`, :func:`load_split` and
:class:`DatasetStats`, so file names and the stats schema live here once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from behaviorlm_plugin.extras.constants import FEATURES_SUFFIX, META_SUFFIX, STATS_FILE
from behaviorlm_plugin.extras.fileio import read_jsonl


class DatasetError(ValueError):
    """A prepared dataset that is missing, partial or malformed; the message names the file and the fix."""


@dataclass(frozen=True)
class BehaviorInfo:
    """One behavior's training-split figures and categories."""

    train_count: int
    train_frequency: float
    anchor_tail: str
    head_medium_tail: str
    test_balanced_count: int = 0


@dataclass(frozen=True)
class DatasetStats:
    """The parts of ``stats.json`` the code reads, typed; ``raw`` keeps the whole file for reports."""

    path: Path
    name: str
    behaviors: dict[str, BehaviorInfo]
    thresholds: dict[str, float]
    samples_written: dict[str, int]
    arguments: dict
    raw: dict

    @classmethod
    def read(cls, path: str | Path) -> DatasetStats:
        """Parse ``stats.json``; anything missing or malformed fails once, naming the file and the key."""
        path = Path(path)
        if not path.is_file():
            raise DatasetError(f"{path}: stats.json not found; pass the one `behaviorlm prepare` wrote")
        try:
            raw = json.loads(path.read_text("utf-8"))
        except json.JSONDecodeError as err:
            raise DatasetError(f"{path}: not valid JSON (line {err.lineno}: {err.msg}); re-run prepare") from err
        if not isinstance(raw, dict) or "behaviors" not in raw:
            raise DatasetError(
                f"{path}: has no 'behaviors' section; pass the stats.json that `behaviorlm prepare` wrote"
            )
        try:
            behaviors = {
                b: BehaviorInfo(
                    train_count=int(v["train_count"]),
                    train_frequency=float(v["train_frequency"]),
                    anchor_tail=str(v["anchor_tail"]),
                    head_medium_tail=str(v["head_medium_tail"]),
                    test_balanced_count=int(v.get("test_balanced_count", 0)),
                )
                for b, v in raw["behaviors"].items()
            }
            thresholds = {k: float(v) for k, v in raw["categories"]["thresholds"].items()}
            written = {k: int(v) for k, v in raw["splits"]["samples_written"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise DatasetError(
                f"{path}: malformed stats.json (missing or bad {err}); re-run `behaviorlm prepare` to rewrite it"
            ) from err
        return cls(path, str(raw.get("name", "")), behaviors, thresholds, written, raw.get("arguments", {}), raw)

    @property
    def behavior_list(self) -> list[str]:
        return list(self.behaviors)

    @property
    def anchor_tail(self) -> dict[str, str]:
        return {b: v.anchor_tail for b, v in self.behaviors.items()}

    @property
    def head_medium_tail(self) -> dict[str, str]:
        return {b: v.head_medium_tail for b, v in self.behaviors.items()}

    @property
    def frequency(self) -> dict[str, float]:
        return {b: v.train_frequency for b, v in self.behaviors.items()}

    @property
    def metric_thresholds(self) -> tuple[float, float]:
        """(medium, head) frequency thresholds of the head/medium/tail categories."""
        return self.thresholds.get("medium", 0.01), self.thresholds.get("head", 0.05)


class PreparedDataset:
    """``DATASET_DIR/NAME/``: paths of its files, its stats and its splits."""

    def __init__(self, dataset_dir: str | Path, name: str) -> None:
        self.dataset_dir = Path(dataset_dir)
        self.name = name
        self.base = self.dataset_dir / name

    def path(self, split: str) -> Path:
        return self.base / f"{split}.jsonl"

    def meta_path(self, split: str) -> Path:
        return meta_path_of(self.path(split))

    def features_path(self, split: str) -> Path:
        return self.base / f"{split}{FEATURES_SUFFIX}"

    @property
    def stats_path(self) -> Path:
        return self.base / STATS_FILE

    @cached_property
    def stats(self) -> DatasetStats:
        if not self.stats_path.is_file():
            raise DatasetError(f"{self.stats_path}: not found; run `behaviorlm prepare --name {self.name}` first")
        return DatasetStats.read(self.stats_path)

    def load(self, split: str, **caps) -> tuple[list[dict], list[dict]]:
        return load_split(self.path(split), **caps)


def meta_path_of(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(".jsonl") + META_SUFFIX)


def load_split(
    path: str | Path, max_samples: int | None = None, max_per_class: int | None = None, seed: int = 0
) -> tuple[list[dict], list[dict]]:
    """A prepared split and its metadata sidecar, checked to be line-aligned, optionally subsampled.

    Subsets are seeded random draws (per class first, then overall) returned in file order.
    """
    path = Path(path)
    meta_path = meta_path_of(path)
    if not path.is_file():
        raise DatasetError(f"{path}: data file not found")
    if not meta_path.is_file():
        raise DatasetError(
            f"{meta_path}: metadata sidecar not found; --data must be a split written by `behaviorlm prepare`"
        )
    recs, metas = read_jsonl(path), read_jsonl(meta_path)
    if len(recs) != len(metas):
        raise DatasetError(f"{path} has {len(recs)} rows but {meta_path} has {len(metas)}; re-run prepare")
    for i, (r, m) in enumerate(zip(recs, metas, strict=True)):
        if r.get("id") != m.get("id") or "candidates" not in m:
            raise DatasetError(f"{meta_path}: row {i} does not match {path} (id {r.get('id')!r}); re-run prepare")
    if max_per_class is None and max_samples is None:
        return recs, metas
    keep = subset_indices([m["label"] for m in metas], max_samples, max_per_class, seed)
    return [recs[i] for i in keep], [metas[i] for i in keep]


def subset_indices(labels: list[str], max_samples: int | None, max_per_class: int | None, seed: int) -> np.ndarray:
    """Seeded subset: at most ``max_per_class`` per label, then at most ``max_samples``; in file order."""
    keep = np.random.default_rng(seed).permutation(len(labels))
    if max_per_class is not None:
        seen: dict[str, int] = {}
        picked = []
        for i in keep:
            if seen.get(labels[i], 0) < max_per_class:
                seen[labels[i]] = seen.get(labels[i], 0) + 1
                picked.append(i)
        keep = np.array(picked, dtype=int)
    if max_samples is not None:
        keep = keep[:max_samples]
    return np.sort(keep)
