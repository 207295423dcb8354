"""The selection block: how B-Tuning samples are picked (``behaviorlm select``, ``selection:`` in runs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from behaviorlm_plugin.extras.constants import K_PER_BEHAVIOR


@dataclass
class SelectionArguments:
    r"""Difficulty-based selection for B-Tuning (the paper's DDS + CDS).

    What to pick:
        k (samples per behavior), strategy (a registered selection strategy), seed (pool order)
    How much to score:
        chunk_size (samples per behavior per round), max_scored_per_class (the pool cap)
    Scoring:
        batch_size (prompts per forward pass)
    """

    k: int = field(default=K_PER_BEHAVIOR, metadata={"help": "Samples per behavior (paper: ~20)."})
    strategy: str = field(
        default="dds_cds",
        metadata={"help": "A registered strategy: dds_cds (BehaviorLM), dds (w/o CDS) or uniform (w/o DDS)."},
    )
    seed: int = field(default=42, metadata={"help": "Seed of the pool order (same seed, same selection)."})
    chunk_size: int = field(
        default=8, metadata={"help": "Samples scored per behavior per round before checking whether it has enough."}
    )
    max_scored_per_class: int | None = field(
        default=200, metadata={"help": "Stop scoring a behavior after this many samples (None = no limit)."}
    )
    batch_size: int = field(default=4, metadata={"help": "Scorer batch size."})
    pool: Literal["train_all", "train_pool"] = field(
        default="train_all",
        metadata={
            "help": "The pool picked from: train_all (the natural sample, the paper's) or train_pool (every behavior's "
            "share, up to prepare.pool_per_class: k for every class)."
        },
    )

    def __post_init__(self) -> None:
        # ``strategy`` is checked against the registry where it is used (tuning.strategies.check_strategy_name):
        # runs check it before their first step, and a plugin registered later still counts.
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_scored_per_class is not None and self.max_scored_per_class < 1:
            raise ValueError("max_scored_per_class must be >= 1 or None")
