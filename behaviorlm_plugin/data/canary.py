"""The canary: the simulator's users, times and places, with behavior a fixed function of the place.

A cheap "can my set-up learn at all?" check (``behaviorlm prepare --synthetic canary``). The events are the
default simulator's, drawn from the same seed (:func:`~behaviorlm_plugin.data.simulator.simulate_places`): the
same users, routines and place sequences, so the history is as irregular as the default data's. Only each
event's behavior is replaced, by a fixed table and no randomness:

* ``place`` (the default): behavior = f(place), 7 places -> 7 behaviors. The prompt states the next event's
  place, so a set-up that learns anything should reach ~100% on ``test``; the classes are as unequal as the
  places (home ~46% ... gym ~5%), all anchors at the default ``--anchor-threshold`` 0.01.
* ``place_hour``: behavior = f(place, part of the day), 7 places x 4 parts (night 0-5 h, morning 6-11 h,
  afternoon 12-17 h, evening 18-23 h) -> 16 behaviors; a few cells are rare (away from home at night,
  the workplace or school in the evening), so there are tail behaviors (< 1%) and train_tail is not empty.

Behavior names are the simulator's (``BEHAVIORS``), so the prompts are the default data's. The oracle of a
canary (``data/oracle.py``) is one-hot on the rule's label: the rule *is* the data.
"""

from __future__ import annotations

from typing import get_args

import numpy as np
import pandas as pd

from behaviorlm_plugin.data.simulator import SimulatorConfig, simulate_places
from behaviorlm_plugin.data.simulator_tables import BEHAVIOR_INDEX, BEHAVIORS, PLACES
from behaviorlm_plugin.hparams.data_args import CanaryRule

__all__ = [
    "CANARY_BY_PLACE",
    "CANARY_BY_PLACE_AND_PART",
    "DAY_PARTS",
    "canary_behaviors",
    "canary_events",
    "canary_labels",
    "canary_with_truth",
    "day_part",
]

DAY_PARTS: tuple[str, ...] = ("night", "morning", "afternoon", "evening")
"""Parts of the day, six hours each from midnight: hour // 6."""

CANARY_BY_PLACE: dict[str, str] = {
    "home": "Cooking",
    "workplace": "Meeting online",
    "school": "Studying for course",
    "transit": "Taking subway",
    "outdoors": "Taking photos",
    "mall": "Shopping online",
    "gym": "Exercising",
}
"""The ``place`` rule."""

_AWAY = "Hailing taxi"  # every place but home at night: ~0.2% of events, a tail
CANARY_BY_PLACE_AND_PART: dict[str, tuple[str, str, str, str]] = {
    # place: (night, morning, afternoon, evening), as DAY_PARTS
    "home": ("Gaming", "Reading news", "Watching video", "Cooking"),
    "workplace": (_AWAY, "Checking calendar", "Meeting online", "Ordering takeout"),  # takeout ~0.7%: a tail
    "school": (_AWAY, "Studying for course", "Studying for course", "Taking notes"),  # notes ~0.6%: a tail
    "transit": (_AWAY, "Taking subway", "Taking subway", "Taking subway"),
    "outdoors": (_AWAY, "Cycling", "Taking photos", "Taking photos"),
    "mall": (_AWAY, "Drinking coffee", "Shopping online", "Shopping online"),
    "gym": (_AWAY, "Exercising", "Exercising", "Exercising"),
}
"""The ``place_hour`` rule: place -> behavior in each part of the day (:data:`DAY_PARTS`)."""


def day_part(hour: np.ndarray) -> np.ndarray:
    """Index into :data:`DAY_PARTS` of each hour (0-23)."""
    return np.asarray(hour, dtype=np.int64) // 6


def _table(rule: CanaryRule) -> np.ndarray:
    """``[place, hour]`` -> behavior index into ``BEHAVIORS``, for every place and hour."""
    if rule not in get_args(CanaryRule):
        raise ValueError(f"canary rule must be one of {', '.join(get_args(CanaryRule))}, got {rule!r}")
    parts = day_part(np.arange(24))
    table = np.empty((len(PLACES), 24), dtype=np.int64)
    for p, place in enumerate(PLACES):
        if rule == "place":
            table[p] = BEHAVIOR_INDEX[CANARY_BY_PLACE[place]]
        else:
            table[p] = [BEHAVIOR_INDEX[CANARY_BY_PLACE_AND_PART[place][d]] for d in parts]
    return table


def canary_behaviors(rule: CanaryRule) -> tuple[str, ...]:
    """The behaviors the rule can give, in ``BEHAVIORS`` order (the canary log's behavior categories)."""
    used = set(_table(rule).ravel().tolist())
    return tuple(b for i, b in enumerate(BEHAVIORS) if i in used)


def canary_labels(place: np.ndarray, hour: np.ndarray, rule: CanaryRule) -> np.ndarray:
    """The rule's behavior (index into ``BEHAVIORS``) of events at ``place`` (index into ``PLACES``) and ``hour``."""
    return _table(rule)[np.asarray(place, dtype=np.int64), np.asarray(hour, dtype=np.int64)]


def canary_events(cfg: SimulatorConfig, rule: CanaryRule) -> pd.DataFrame:
    """The canary log: :func:`simulate_places` with each event's behavior set by ``rule`` (standard columns,
    sorted by user then time; behavior categories are :func:`canary_behaviors`, so every candidate list is the
    rule's behaviors)."""
    df = simulate_places(cfg)
    label = canary_labels(df["place"].cat.codes.to_numpy(), df["timestamp"].dt.hour.to_numpy(), rule)
    df["behavior"] = pd.Categorical(np.asarray(BEHAVIORS, dtype=object)[label], categories=canary_behaviors(rule))
    return df


def canary_with_truth(cfg: SimulatorConfig, rule: CanaryRule) -> tuple[pd.DataFrame, np.ndarray]:
    """The canary log and, per event (row order), its true next-behavior distribution: ``float32 [n_events,
    len(BEHAVIORS)]``, one-hot on the rule's behavior (columns in ``BEHAVIORS`` order, as
    :func:`~behaviorlm_plugin.data.simulator.simulate_with_truth`)."""
    df = canary_events(cfg, rule)
    label = np.array([BEHAVIOR_INDEX[b] for b in df["behavior"].cat.categories])[df["behavior"].cat.codes.to_numpy()]
    truth = np.zeros((len(df), len(BEHAVIORS)), dtype=np.float32)
    truth[np.arange(len(df)), label] = 1.0
    return df, truth
