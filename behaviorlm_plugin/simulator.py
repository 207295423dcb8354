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

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

# --- The paper's Behavior dataset (Appendix A), in table order -----------------------
# The appendix table lists 35 behaviors (summing to 1.0) although the text says 37;
# we follow the table.  Two label typos are fixed ("Rentaling" -> "Renting").
PAPER_BEHAVIOR_PROPORTIONS: dict[str, float] = {
    "Watching video clip": 0.435981,
    "Shopping online": 0.112217,
    "Editing video": 0.05937,
    "Reading books": 0.055293,
    "Gaming": 0.044202,
    "Watching video": 0.041266,
    "Reading news": 0.036046,
    "Taking photos": 0.035068,
    "Taking subway": 0.031969,
    "Payment": 0.029848,
    "Listening Music": 0.02365,
    "Checking Weather": 0.016963,
    "Studying for course": 0.01419,
    "Ordering takeout": 0.012722,
    "Listening podcast": 0.012396,
    "Conducting job recruitment": 0.010928,
    "Taking notes": 0.003915,
    "Checking calendar": 0.003591,
    "Hailing taxi": 0.003262,
    "Picking up the express delivery": 0.00261,
    "Watching Match": 0.00213,
    "Exercising": 0.002003,
    "Singing": 0.001957,
    "Watching Live-streaming": 0.001794,
    "Cycling": 0.001794,
    "Meeting online": 0.000816,
    "Studying for driving test": 0.000652,
    "Translating": 0.000652,
    "Renting house": 0.000652,
    "Watching animation": 0.000489,
    "Booking ticket": 0.000489,
    "Commuting check-in": 0.000323,
    "Cooking": 0.000323,
    "Drinking coffee": 0.000283,
    "Renting car": 0.000163,
}
BEHAVIORS: tuple[str, ...] = tuple(PAPER_BEHAVIOR_PROPORTIONS)
PLACES: tuple[str, ...] = ("home", "workplace", "school", "transit", "outdoors", "mall", "gym")
PERSONAS: tuple[str, ...] = ("office worker", "student", "freelancer", "retiree")
DAY_NAMES: tuple[str, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

_B = {name: i for i, name in enumerate(BEHAVIORS)}
_P = {name: i for i, name in enumerate(PLACES)}
_WEEKDAYS = (0, 1, 2, 3, 4)
_WEEKEND = (5, 6)
_ALL_DAYS = tuple(range(7))


@dataclass(frozen=True)
class SimulatorConfig:
    """Size and randomness of a synthetic log. Defaults mirror the paper's 60-day window."""

    num_users: int = 2000
    num_days: int = 60
    start_date: str = "2024-03-01"
    events_per_day: float = 10.0
    seed: int = 0
    persona_weights: tuple[float, ...] = (0.45, 0.25, 0.15, 0.15)
    preference_noise: float = 0.6  # sd of per-user log-affinity noise (individual taste)

    def __post_init__(self) -> None:
        if self.num_users < 1 or self.num_days < 1:
            raise ValueError("num_users and num_days must be >= 1")
        if self.events_per_day <= 0:
            raise ValueError("events_per_day must be > 0")
        if len(self.persona_weights) != len(PERSONAS) or min(self.persona_weights) < 0:
            raise ValueError(f"persona_weights needs {len(PERSONAS)} non-negative weights")


# --- Place routines -------------------------------------------------------------------
def _place_table() -> np.ndarray:
    """P(place | persona, weekend, hour) as [persona, 2, 24, place]."""
    t = np.full((len(PERSONAS), 2, 24, len(PLACES)), 0.01)

    def put(persona: int, weekend: int, hours, **probs: float) -> None:
        for h in hours:
            for place, p in probs.items():
                t[persona, weekend, h, _P[place]] += p

    night, morning, commute_am = range(0, 7), range(7, 9), range(7, 9)
    office, lunch, commute_pm, evening, late = range(9, 12), range(12, 14), range(17, 19), range(19, 22), (22, 23)
    for persona, day_place in ((0, "workplace"), (1, "school")):
        put(persona, 0, night, home=1.0)
        put(persona, 0, commute_am, transit=0.6, home=0.4)
        put(persona, 0, office, **{day_place: 0.9, "outdoors": 0.05})
        put(persona, 0, lunch, **{day_place: 0.6, "outdoors": 0.25, "mall": 0.1})
        put(persona, 0, range(14, 17), **{day_place: 0.9, "outdoors": 0.05})
        put(persona, 0, commute_pm, transit=0.6, **{day_place: 0.2, "mall": 0.1})
        put(persona, 0, evening, home=0.6, mall=0.12, gym=0.1, outdoors=0.15)
        put(persona, 0, late, home=0.8, outdoors=0.2)
    for persona in (2, 3):  # freelancer, retiree: no commute
        put(persona, 0, night, home=1.0)
        put(persona, 0, morning, home=0.8, outdoors=0.2)
        put(persona, 0, range(9, 17), home=0.55, outdoors=0.2, mall=0.15, gym=0.1)
        put(persona, 0, range(17, 24), home=0.75, outdoors=0.1, mall=0.1, gym=0.05)
    for persona in range(len(PERSONAS)):
        put(persona, 1, range(0, 10), home=1.0)
        put(persona, 1, range(10, 18), home=0.35, outdoors=0.3, mall=0.25, gym=0.1)
        put(persona, 1, range(18, 22), home=0.55, outdoors=0.25, mall=0.15, gym=0.05)
        put(persona, 1, late, home=0.6, outdoors=0.4)
    return t / t.sum(-1, keepdims=True)


def _hour_table() -> np.ndarray:
    """P(hour | persona, weekend) as [persona, 2, 24]: people use phones when awake."""
    base = np.array([1.5, 0.8, 0.4, 0.2, 0.2, 0.4, 1.5, 4, 6, 5, 4, 4.5, 6, 5, 4, 4, 4.5, 5.5, 6, 7, 8, 8, 6.5, 3.5])
    t = np.tile(base, (len(PERSONAS), 2, 1))
    t[:, 1, 6:10] *= 0.5  # weekend: sleep in
    t[:, 1, 10:24] *= 1.15
    t[3, :, 0:2] *= 0.4  # retirees go to bed early …
    t[3, :, 22:24] *= 0.5
    t[3, :, 6:9] *= 1.6  # … and get up early
    t[1, :, 22:24] *= 1.4  # students stay up
    t[1, :, 0:2] *= 1.8
    return t / t.sum(-1, keepdims=True)


# --- Behavior routines ----------------------------------------------------------------
# (behavior, days, hours, places, personas or None, log-boost)
_CONTEXT_RULES: list[tuple[str, tuple, range | tuple, tuple, tuple | None, float]] = [
    ("Taking subway", _WEEKDAYS, (7, 8, 17, 18), ("transit",), None, 4.0),
    ("Taking subway", _ALL_DAYS, range(0, 24), ("transit",), None, 1.5),
    ("Listening podcast", _WEEKDAYS, (7, 8, 17, 18), ("transit",), None, 1.8),
    ("Listening Music", _ALL_DAYS, range(0, 24), ("transit",), None, 1.5),
    ("Listening Music", _ALL_DAYS, range(0, 24), ("gym",), None, 3.0),
    ("Reading news", _ALL_DAYS, (6, 7, 8), ("home", "transit"), None, 2.5),
    ("Checking Weather", _ALL_DAYS, (6, 7), ("home",), None, 3.5),
    ("Ordering takeout", _ALL_DAYS, (11, 12), ("workplace", "school", "home"), None, 4.0),
    ("Ordering takeout", _ALL_DAYS, (18, 19), ("home",), None, 1.2),
    ("Conducting job recruitment", _WEEKDAYS, range(9, 18), ("workplace",), (0,), 2.5),
    ("Studying for course", _WEEKDAYS, range(8, 17), ("school",), (1,), 3.0),
    ("Studying for course", _ALL_DAYS, range(19, 23), ("home",), (1,), 1.2),
    ("Reading books", _ALL_DAYS, (21, 22, 23), ("home",), None, 1.0),
    ("Gaming", _ALL_DAYS, range(20, 24), ("home",), None, 1.0),
    ("Gaming", _ALL_DAYS, (0, 1), ("home",), None, 1.0),
    ("Taking photos", _WEEKEND, range(10, 19), ("outdoors", "mall"), None, 3.0),
    ("Shopping online", _ALL_DAYS, range(20, 24), ("home",), None, 1.2),
    ("Shopping online", _ALL_DAYS, range(0, 24), ("mall",), None, 1.5),
    ("Watching video", _ALL_DAYS, range(19, 24), ("home",), None, 1.2),
    ("Watching video clip", _ALL_DAYS, range(0, 24), ("home", "transit"), None, 0.5),
    # Nobody scrolls clips all through office hours or at the gym.
    ("Watching video clip", _WEEKDAYS, range(9, 18), ("workplace", "school"), None, -1.8),
    ("Watching video clip", _ALL_DAYS, range(0, 24), ("gym",), None, -2.0),
    ("Payment", _ALL_DAYS, range(10, 21), ("mall",), None, 2.0),
    # Tail behaviors, each tied to a semantically related anchor routine.
    ("Commuting check-in", _WEEKDAYS, (8, 9), ("workplace",), (0,), 5.5),  # ~ subway
    ("Hailing taxi", _ALL_DAYS, (22, 23, 0, 1), ("outdoors", "transit"), None, 5.0),  # ~ subway
    ("Cooking", _ALL_DAYS, (17, 18, 19), ("home",), None, 4.5),  # ~ takeout
    ("Watching Match", _WEEKEND, (19, 20, 21, 22), ("home",), None, 5.0),  # ~ video
    ("Watching Live-streaming", _ALL_DAYS, (22, 23, 0), ("home",), None, 3.0),  # ~ video clips
    ("Watching animation", _ALL_DAYS, range(18, 23), ("home",), (1,), 3.5),  # ~ video
    ("Exercising", _ALL_DAYS, range(6, 22), ("gym",), None, 4.5),  # ~ music at the gym
    ("Cycling", _WEEKEND, range(8, 18), ("outdoors",), None, 4.0),  # ~ photos outdoors
    ("Singing", (4, 5, 6), (20, 21, 22, 23), ("mall", "outdoors"), None, 4.0),  # ~ music
    ("Drinking coffee", _WEEKDAYS, (8, 9, 10, 14, 15), ("workplace", "school", "mall"), None, 3.5),
    ("Meeting online", _WEEKDAYS, (10, 11, 14, 15, 16), ("workplace", "home"), (0, 2), 4.0),
    ("Taking notes", _WEEKDAYS, range(9, 17), ("school", "workplace"), (0, 1), 2.5),  # ~ studying
    ("Checking calendar", _WEEKDAYS, (7, 8, 9), ("home", "transit", "workplace"), None, 2.5),
    ("Translating", _WEEKDAYS, range(9, 18), ("school", "workplace"), (0, 1), 2.5),  # ~ reading
    ("Studying for driving test", _WEEKEND, range(9, 22), ("home",), (1, 0), 3.5),  # ~ studying
    ("Renting house", _WEEKEND, range(10, 22), ("home",), (0, 1), 3.5),  # ~ job search
    ("Booking ticket", (4,), range(18, 24), ("home", "workplace"), None, 4.0),  # ~ travel on weekends
    ("Renting car", _WEEKEND, range(8, 12), ("home", "outdoors"), None, 4.0),  # ~ taxi
    ("Picking up the express delivery", _ALL_DAYS, range(12, 21), ("home", "workplace"), None, 0.5),
]

# (previous behavior, next behavior, log-boost)
_SEQUENCE_RULES: list[tuple[str, str, float]] = [
    ("Taking photos", "Editing video", 2.8),
    ("Editing video", "Editing video", 1.0),
    ("Shopping online", "Payment", 2.5),
    ("Ordering takeout", "Payment", 1.5),
    ("Taking subway", "Commuting check-in", 3.0),
    ("Taking subway", "Listening podcast", 1.0),
    ("Listening Music", "Singing", 2.0),
    ("Listening Music", "Exercising", 1.5),
    ("Checking Weather", "Checking calendar", 2.0),
    ("Checking Weather", "Cycling", 1.5),
    ("Studying for course", "Taking notes", 2.0),
    ("Studying for course", "Studying for driving test", 1.5),
    ("Reading books", "Translating", 2.0),
    ("Watching video", "Watching animation", 1.8),
    ("Watching video", "Watching Match", 1.5),
    ("Watching video clip", "Watching Live-streaming", 1.5),
    ("Gaming", "Watching Live-streaming", 1.5),
    ("Conducting job recruitment", "Meeting online", 2.0),
    ("Conducting job recruitment", "Renting house", 2.5),
    ("Hailing taxi", "Renting car", 1.5),
    ("Booking ticket", "Hailing taxi", 1.5),
    ("Ordering takeout", "Cooking", -1.0),
    ("Reading news", "Drinking coffee", 1.5),
]
_PICKUP_BOOST = 3.5  # a parcel bought and paid for is waiting to be picked up
_REPEAT_BOOST = 0.7  # people keep doing what they were doing

# Persona affinities (log-scale), the part of preference shared by a persona.
_PERSONA_AFFINITY: dict[int, dict[str, float]] = {
    0: {
        "Conducting job recruitment": 0.6,
        "Meeting online": 0.8,
        "Commuting check-in": 1.0,
        "Taking subway": 0.4,
        "Reading news": 0.3,
        "Drinking coffee": 0.6,
    },
    1: {
        "Gaming": 0.8,
        "Studying for course": 1.5,
        "Watching animation": 1.2,
        "Taking notes": 0.8,
        "Studying for driving test": 1.0,
        "Translating": 0.8,
        "Singing": 0.6,
    },
    2: {
        "Editing video": 0.6,
        "Taking photos": 0.5,
        "Cooking": 0.8,
        "Meeting online": 0.6,
        "Drinking coffee": 0.5,
        "Exercising": 0.4,
    },
    3: {
        "Reading news": 1.0,
        "Cooking": 1.0,
        "Watching Match": 0.6,
        "Listening podcast": 0.4,
        "Gaming": -1.0,
        "Conducting job recruitment": -2.0,
        "Studying for course": -2.0,
        "Watching animation": -1.0,
        "Renting house": -1.0,
        "Studying for driving test": -1.5,
    },
}


def _context_table() -> np.ndarray:
    """Log-boost [persona, day-of-week, hour, place, behavior] from the context rules."""
    t = np.zeros((len(PERSONAS), 7, 24, len(PLACES), len(BEHAVIORS)), dtype=np.float32)
    for behavior, days, hours, places, personas, boost in _CONTEXT_RULES:
        who = list(personas) if personas is not None else list(range(len(PERSONAS)))
        idx = np.ix_(who, list(days), list(hours), [_P[p] for p in places], [_B[behavior]])
        t[idx] += boost
    return t


def _sequence_table() -> np.ndarray:
    t = np.eye(len(BEHAVIORS), dtype=np.float32) * _REPEAT_BOOST
    for prev, nxt, boost in _SEQUENCE_RULES:
        t[_B[prev], _B[nxt]] += boost
    return t


def _persona_table() -> np.ndarray:
    t = np.zeros((len(PERSONAS), len(BEHAVIORS)), dtype=np.float32)
    for persona, prefs in _PERSONA_AFFINITY.items():
        for behavior, value in prefs.items():
            t[persona, _B[behavior]] = value
    return t


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
    preference = _persona_table()[persona] + rng.normal(
        0.0, cfg.preference_noise, size=(n_users, len(BEHAVIORS))
    ).astype(np.float32)

    start_dow = pd.Timestamp(cfg.start_date).dayofweek
    per_day = rng.poisson(cfg.events_per_day * activity[:, None], size=(n_users, n_days))
    user = np.repeat(np.repeat(np.arange(n_users), n_days), per_day.ravel())
    day = np.repeat(np.tile(np.arange(n_days), n_users), per_day.ravel())
    dow = (start_dow + day) % 7
    weekend = (dow >= 5).astype(np.int64)

    # Hour by inverse CDF on P(hour | persona, weekend).
    cdf = np.cumsum(_hour_table(), axis=-1)
    rows = cdf[persona[user], weekend]
    hour = np.minimum((rows < rng.random(len(user))[:, None]).sum(-1), 23)
    minutes = day * 1440 + hour * 60 + rng.integers(0, 60, size=len(user))
    order = np.lexsort((minutes, user))
    user, minutes, dow, hour, weekend = user[order], minutes[order], dow[order], hour[order], weekend[order]

    pcdf = np.cumsum(_place_table(), axis=-1)[persona[user], weekend, hour]
    place = np.minimum((pcdf < rng.random(len(user))[:, None]).sum(-1), len(PLACES) - 1)

    counts = np.bincount(user, minlength=n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return _Skeleton(user, minutes, dow, hour, place, persona, preference, starts, counts)


def _walk(sk: _Skeleton, bias: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw behaviors event by event (vectorised across users).

    Returns the behaviors and the running sum of per-event probabilities (used by
    calibration: the expected marginal is far less noisy than sampled counts).
    """
    ctx = _context_table().reshape(-1, len(BEHAVIORS))
    seq = _sequence_table()
    pickup = _B["Picking up the express delivery"]
    payment, shopping = _B["Payment"], _B["Shopping online"]
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
        logits[pending[active], pickup] += _PICKUP_BOOST
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        prob_sum += p.sum(axis=0)
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
    cfg = cfg or SimulatorConfig()
    bias = np.array(calibrated_bias(cfg.persona_weights, cfg.preference_noise, cfg.events_per_day), np.float32)
    rng = np.random.default_rng(cfg.seed)
    sk = _skeleton(cfg, rng)
    behavior, _ = _walk(sk, bias, rng)
    width = max(5, len(str(cfg.num_users - 1)))
    user_labels = np.array([f"u{i:0{width}d}" for i in range(cfg.num_users)])
    timestamp = pd.Timestamp(cfg.start_date).to_datetime64() + sk.minutes.astype("timedelta64[m]")
    return pd.DataFrame(
        {
            "user_id": pd.Categorical.from_codes(sk.user, categories=user_labels),
            "timestamp": timestamp.astype("datetime64[ns]"),
            "place": pd.Categorical.from_codes(sk.place, categories=list(PLACES)),
            "behavior": pd.Categorical.from_codes(behavior, categories=list(BEHAVIORS)),
        }
    )


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
