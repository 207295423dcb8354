"""Synthetic long-tailed daily-behavior logs: the embedded default dataset.

Why a simulator: the paper's 37-behavior "Behavior" dataset is private, and tests and
the quick-start must run offline.  The simulator produces event logs whose marginal
behavior distribution matches the paper's appendix table and whose next behavior is
predictable from context in ways a pretrained LLM can know about:

* place routines per persona (commute at 7-9/17-19 on weekdays, workplace/school in
  office hours, home at night, outdoors/mall/gym at weekends …);
* behavior routines given time, weekday and place (subway on the commute, takeout at
  noon, checking in at work on weekday mornings, a taxi late at night outside,
  cooking in the evening at home, a match on weekend evenings …);
* sequential links (photos -> editing video, shopping -> payment -> later picking up
  the parcel, subway -> commuting check-in, music -> singing …);
* per-user preferences (persona affinities plus individual taste).

Tail behaviors follow rules tied to a semantically related anchor (taxi ~ subway,
cooking ~ takeout, match ~ video, live-streaming ~ video clips …), so world knowledge
helps.  Each behavior's overall rate is then calibrated so the marginal matches the
paper's table (total-variation distance well under 0.05); the context rules decide
*when* a behavior happens, calibration only decides *how often*.

Everything is vectorised over users; the only Python loop runs over the event rank
within a user (needed because the next behavior depends on the previous one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

from behaviorlm_plugin.data.simulator_tables import (
    BEHAVIOR_INDEX,
    BEHAVIORS,
    DAY_NAMES,
    PAPER_BEHAVIOR_PROPORTIONS,
    PERSONAS,
    PICKUP_BOOST,
    PLACES,
    context_table,
    hour_table,
    persona_table,
    place_table,
    sequence_table,
)
from behaviorlm_plugin.extras.constants import SYNTHETIC_DAYS, SYNTHETIC_USERS

__all__ = [
    "BEHAVIORS",
    "DAY_NAMES",
    "PAPER_BEHAVIOR_PROPORTIONS",
    "PERSONAS",
    "PLACES",
    "SimulatorConfig",
    "calibrated_bias",
    "simulate_events",
    "simulate_places",
    "simulate_with_truth",
    "total_variation",
    "user_personas",
]


@dataclass(frozen=True)
class SimulatorConfig:
    """Size and randomness of a synthetic log. Defaults mirror the paper's 60-day window."""

    num_users: int = field(default=SYNTHETIC_USERS, metadata={"help": "Simulated users."})
    num_days: int = field(default=SYNTHETIC_DAYS, metadata={"help": "Simulated days (paper: 60)."})
    start_date: str = field(default="2024-03-01", metadata={"help": "First simulated day (sets the weekdays)."})
    events_per_day: float = field(default=10.0, metadata={"help": "Mean events per user per day."})
    seed: int = field(default=0, metadata={"help": "Seed of personas, tastes and the event walk."})
    persona_weights: tuple[float, ...] = field(
        default=(0.45, 0.25, 0.15, 0.15), metadata={"help": "Share of each persona in the population."}
    )
    preference_noise: float = field(
        default=0.6, metadata={"help": "sd of per-user log-affinity noise (individual taste)."}
    )

    def __post_init__(self) -> None:
        if self.num_users < 1 or self.num_days < 1:
            raise ValueError("num_users and num_days must be >= 1")
        if self.events_per_day <= 0:
            raise ValueError("events_per_day must be > 0")
        if len(self.persona_weights) != len(PERSONAS) or min(self.persona_weights) < 0:
            raise ValueError(f"persona_weights needs {len(PERSONAS)} non-negative weights")


# --- Generation -----------------------------------------------------------------------
@dataclass
class _Skeleton:
    """Everything about the events except the behavior: who, when, where."""

    user: np.ndarray  # int, events sorted by (user, time)
    minutes: np.ndarray  # int64 minutes since start_date
    dow: np.ndarray
    hour: np.ndarray
    place: np.ndarray
    persona: np.ndarray  # per user
    preference: np.ndarray  # per user [B]
    starts: np.ndarray  # per user, first event index
    counts: np.ndarray  # per user


def _skeleton(cfg: SimulatorConfig, rng: np.random.Generator) -> _Skeleton:
    n_users, n_days = cfg.num_users, cfg.num_days
    weights = np.asarray(cfg.persona_weights, dtype=float)
    persona = rng.choice(len(PERSONAS), size=n_users, p=weights / weights.sum())
    activity = rng.lognormal(0.0, 0.35, size=n_users)
    preference = persona_table()[persona] + rng.normal(
        0.0, cfg.preference_noise, size=(n_users, len(BEHAVIORS))
    ).astype(np.float32)

    start_dow = pd.Timestamp(cfg.start_date).dayofweek
    per_day = rng.poisson(cfg.events_per_day * activity[:, None], size=(n_users, n_days))
    user = np.repeat(np.repeat(np.arange(n_users), n_days), per_day.ravel())
    day = np.repeat(np.tile(np.arange(n_days), n_users), per_day.ravel())
    dow = (start_dow + day) % 7
    weekend = (dow >= 5).astype(np.int64)

    # Hour by inverse CDF on P(hour | persona, weekend).
    cdf = np.cumsum(hour_table(), axis=-1)
    rows = cdf[persona[user], weekend]
    hour = np.minimum((rows < rng.random(len(user))[:, None]).sum(-1), 23)
    minutes = day * 1440 + hour * 60 + rng.integers(0, 60, size=len(user))
    order = np.lexsort((minutes, user))
    user, minutes, dow, hour, weekend = user[order], minutes[order], dow[order], hour[order], weekend[order]

    pcdf = np.cumsum(place_table(), axis=-1)[persona[user], weekend, hour]
    place = np.minimum((pcdf < rng.random(len(user))[:, None]).sum(-1), len(PLACES) - 1)

    counts = np.bincount(user, minlength=n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return _Skeleton(user, minutes, dow, hour, place, persona, preference, starts, counts)


def _walk(
    sk: _Skeleton, bias: np.ndarray, rng: np.random.Generator, record: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Draw behaviors event by event (vectorised across users).

    Returns the behaviors and the running sum of per-event probabilities (used by
    calibration: the expected marginal is far less noisy than sampled counts).  With ``record``
    (an ``[n_events, n_behaviors]`` array) each event's row gets the distribution it was drawn
    from: the oracle.  Recording draws no random numbers, so the events are the same either way.
    """
    ctx = context_table().reshape(-1, len(BEHAVIORS))
    seq = sequence_table()
    pickup = BEHAVIOR_INDEX["Picking up the express delivery"]
    payment, shopping = BEHAVIOR_INDEX["Payment"], BEHAVIOR_INDEX["Shopping online"]
    n_places = len(PLACES)
    ctx_id = ((sk.persona[sk.user] * 7 + sk.dow) * 24 + sk.hour) * n_places + sk.place

    behavior = np.empty(len(sk.user), dtype=np.int64)
    prob_sum = np.zeros(len(BEHAVIORS))
    order = np.argsort(-sk.counts, kind="stable")  # users with most events first
    sorted_counts = sk.counts[order]
    pending = np.zeros(len(sk.counts), dtype=bool)  # parcel waiting per user
    prev = np.full(len(sk.counts), -1)
    prev2 = np.full(len(sk.counts), -1)
    max_rank = int(sorted_counts[0]) if len(sorted_counts) else 0
    for rank in range(max_rank):
        active = order[: int(np.searchsorted(-sorted_counts, -rank, side="left"))]  # counts > rank
        ev = sk.starts[active] + rank
        logits = ctx[ctx_id[ev]] + sk.preference[active] + bias
        has_prev = prev[active] >= 0
        logits[has_prev] += seq[prev[active][has_prev]]
        logits[pending[active], pickup] += PICKUP_BOOST
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        prob_sum += p.sum(axis=0)
        if record is not None:
            record[ev] = p
        u = rng.random(len(active))[:, None]
        choice = np.minimum((np.cumsum(p, axis=1) < u).sum(axis=1), len(BEHAVIORS) - 1)
        behavior[ev] = choice
        # Payment right after shopping online leaves a parcel to pick up later.
        paid_for_goods = (choice == payment) & ((prev[active] == shopping) | (prev2[active] == shopping))
        pending[active[paid_for_goods]] = True
        pending[active[choice == pickup]] = False
        prev2[active] = prev[active]
        prev[active] = choice
    return behavior, prob_sum


@lru_cache(maxsize=8)
def calibrated_bias(persona_weights: tuple[float, ...], preference_noise: float, events_per_day: float) -> tuple:
    """Per-behavior log-bias that makes the expected marginal match the paper's table.

    Fixed-point iteration ``bias += log(target) - log(expected)`` on a pilot population
    with its own fixed seed, so the result depends only on the simulator's rules.
    """
    target = np.array(list(PAPER_BEHAVIOR_PROPORTIONS.values()))
    target = target / target.sum()
    pilot = SimulatorConfig(
        num_users=600,
        num_days=21,
        seed=12345,
        persona_weights=persona_weights,
        preference_noise=preference_noise,
        events_per_day=events_per_day,
    )
    bias = np.log(target).astype(np.float32)
    for _ in range(10):
        rng = np.random.default_rng(pilot.seed)
        sk = _skeleton(pilot, rng)
        _, prob_sum = _walk(sk, bias, rng)
        expected = prob_sum / prob_sum.sum()
        bias = (bias + np.log(target) - np.log(expected)).astype(np.float32)
    return tuple(float(b) for b in bias)


def simulate_events(cfg: SimulatorConfig | None = None) -> pd.DataFrame:
    """Generate an event log with the standard columns (user_id, timestamp, place, behavior).

    String columns are pandas Categoricals (fast and compact); the frame is sorted by
    user then time, like every loader's output.
    """
    return _simulate(cfg or SimulatorConfig(), truth=False)[0]


def simulate_with_truth(cfg: SimulatorConfig | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """The same events as :func:`simulate_events` and, per event (row order), the exact distribution its
    behavior was drawn from: ``float32 [n_events, len(BEHAVIORS)]``, columns in ``BEHAVIORS`` order.

    The distribution is the simulator's whole state at that event (persona, personal taste, context,
    previous behaviors, a pending parcel): the clairvoyant oracle of ``data/oracle.py``.
    """
    return _simulate(cfg or SimulatorConfig(), truth=True)


def simulate_places(cfg: SimulatorConfig | None = None) -> pd.DataFrame:
    """The events of :func:`simulate_events` without their behaviors: the same users, times and places
    (user_id, timestamp, place), drawn from the same seed, so a rule can put its own behaviors on them
    (the canary, ``data/canary.py``). The behavior walk is skipped, so no calibration runs."""
    cfg = cfg or SimulatorConfig()
    return _frame(cfg, _skeleton(cfg, np.random.default_rng(cfg.seed)))


def _frame(cfg: SimulatorConfig, sk: _Skeleton) -> pd.DataFrame:
    """The who/when/where columns of a skeleton (string columns as Categoricals, sorted by user then time)."""
    width = max(5, len(str(cfg.num_users - 1)))
    user_labels = np.array([f"u{i:0{width}d}" for i in range(cfg.num_users)])
    timestamp = pd.Timestamp(cfg.start_date).to_datetime64() + sk.minutes.astype("timedelta64[m]")
    return pd.DataFrame(
        {
            "user_id": pd.Categorical.from_codes(sk.user, categories=user_labels),
            "timestamp": timestamp.astype("datetime64[ns]"),
            "place": pd.Categorical.from_codes(sk.place, categories=list(PLACES)),
        }
    )


def _simulate(cfg: SimulatorConfig, truth: bool) -> tuple[pd.DataFrame, np.ndarray | None]:
    bias = np.array(calibrated_bias(cfg.persona_weights, cfg.preference_noise, cfg.events_per_day), np.float32)
    rng = np.random.default_rng(cfg.seed)
    sk = _skeleton(cfg, rng)
    record = np.empty((len(sk.user), len(BEHAVIORS)), dtype=np.float32) if truth else None
    behavior, _ = _walk(sk, bias, rng, record)
    df = _frame(cfg, sk)
    df["behavior"] = pd.Categorical.from_codes(behavior, categories=list(BEHAVIORS))
    return df, record


def user_personas(cfg: SimulatorConfig) -> np.ndarray:
    """Persona index of every simulated user (same draw as :func:`simulate_events`)."""
    rng = np.random.default_rng(cfg.seed)
    weights = np.asarray(cfg.persona_weights, dtype=float)
    return rng.choice(len(PERSONAS), size=cfg.num_users, p=weights / weights.sum())


def total_variation(counts: dict[str, int] | pd.Series, reference: dict[str, float] | None = None) -> float:
    """TV distance between an observed label distribution and a reference (default: paper)."""
    reference = reference or PAPER_BEHAVIOR_PROPORTIONS
    counts = pd.Series(counts, dtype=float)
    labels = sorted(set(counts.index) | set(reference))
    p = counts.reindex(labels, fill_value=0.0)
    q = pd.Series(reference, dtype=float).reindex(labels, fill_value=0.0)
    return float(0.5 * (p / p.sum() - q / q.sum()).abs().sum())
