"""Selection strategies for B-Tuning, as a registry (PEFT ``register_peft_method`` style).

A strategy ranks a behavior's pool samples into tiers from the stage-1 model's verdict; lower
tiers are picked first, and within a tier lower true-label probability first:

* ``dds_cds`` (BehaviorLM): tier 1 = mispredicted with a prediction in the truth's anchor/tail
  category (contrastive, CDS), tier 2 = other mispredictions (difficulty, DDS);
* ``dds`` (w/o CDS): tier 1 = every misprediction;
* ``uniform`` (w/o DDS): nothing scored, a seeded random ``k`` per behavior.

Tier 3 (correct, lowest true-label probability first) and tier 4 (not scored) are common to all.
Adding a strategy is one function and one :func:`register_selection_strategy` call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

TIER_NAMES = {1: "mispredicted_same_category", 2: "mispredicted", 3: "correct_low_prob", 4: "unscored"}
MissTier = Callable[[str, str, dict[str, str]], int]
"""(true label, predicted label, anchor/tail per behavior) -> 1 or 2, for a mispredicted sample."""


@dataclass(frozen=True)
class SelectionStrategy:
    name: str
    miss_tier: MissTier | None
    """None: the strategy scores nothing (a random pick)."""
    description: str = ""

    @property
    def scores(self) -> bool:
        return self.miss_tier is not None


_STRATEGIES: dict[str, SelectionStrategy] = {}


def register_selection_strategy(
    *, name: str, miss_tier: MissTier | None, description: str = "", overwrite: bool = False
) -> SelectionStrategy:
    """Add a strategy; a duplicate name is refused unless ``overwrite``."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"strategy name must be an identifier-like string, got {name!r}")
    if miss_tier is not None and not callable(miss_tier):
        raise TypeError(f"strategy {name!r}: miss_tier must be callable or None, got {type(miss_tier).__name__}")
    if name in _STRATEGIES and not overwrite:
        raise ValueError(f"selection strategy {name!r} is already registered; pass overwrite=True to replace it")
    strategy = SelectionStrategy(name, miss_tier, description)
    _STRATEGIES[name] = strategy
    return strategy


def get_strategy(name: str) -> SelectionStrategy:
    if name not in _STRATEGIES:
        raise ValueError(f"unknown selection strategy {name!r}; registered: {', '.join(strategy_names())}")
    return _STRATEGIES[name]


def strategy_names() -> tuple[str, ...]:
    return tuple(sorted(_STRATEGIES))


def check_strategy_name(name: str, *, source: str = "strategy") -> None:
    """A registered strategy's name, or the error a config with a typo gets before any step runs."""
    if name not in _STRATEGIES:
        raise ValueError(f"{source} must be one of {', '.join(strategy_names())}; got {name!r}")


def _contrastive(label: str, predicted: str, anchor_tail: dict[str, str]) -> int:
    return 1 if anchor_tail.get(predicted) == anchor_tail.get(label) else 2


def _any_miss(label: str, predicted: str, anchor_tail: dict[str, str]) -> int:
    return 1


register_selection_strategy(name="dds_cds", miss_tier=_contrastive, description="BehaviorLM: DDS + CDS")
register_selection_strategy(name="dds", miss_tier=_any_miss, description="w/o CDS: every miss is tier 1")
register_selection_strategy(name="uniform", miss_tier=None, description="w/o DDS: a random k per behavior")
