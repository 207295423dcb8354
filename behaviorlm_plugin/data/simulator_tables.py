"""Static tables of the synthetic-behavior simulator (:mod:`behaviorlm_plugin.data.simulator`).

The paper's behavior proportions, the label sets, and the routine rules (places by hour,
behaviors by context, sequential links, persona affinities) with the functions that turn
them into the numpy tables the simulator samples from. Numbers here decide the simulated
data: changing any of them changes every synthetic dataset.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "BEHAVIORS",
    "BEHAVIOR_INDEX",
    "DAY_NAMES",
    "PAPER_BEHAVIOR_PROPORTIONS",
    "PERSONAS",
    "PICKUP_BOOST",
    "PLACES",
    "PLACE_INDEX",
    "context_table",
    "hour_table",
    "persona_table",
    "place_table",
    "sequence_table",
]

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

BEHAVIOR_INDEX = {name: i for i, name in enumerate(BEHAVIORS)}
PLACE_INDEX = {name: i for i, name in enumerate(PLACES)}
_WEEKDAYS = (0, 1, 2, 3, 4)
_WEEKEND = (5, 6)
_ALL_DAYS = tuple(range(7))


# --- Place routines -------------------------------------------------------------------
def place_table() -> np.ndarray:
    """P(place | persona, weekend, hour) as [persona, 2, 24, place]."""
    t = np.full((len(PERSONAS), 2, 24, len(PLACES)), 0.01)

    def put(persona: int, weekend: int, hours, **probs: float) -> None:
        for h in hours:
            for place, p in probs.items():
                t[persona, weekend, h, PLACE_INDEX[place]] += p

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


def hour_table() -> np.ndarray:
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
PICKUP_BOOST = 3.5  # a parcel bought and paid for is waiting to be picked up
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


def context_table() -> np.ndarray:
    """Log-boost [persona, day-of-week, hour, place, behavior] from the context rules."""
    t = np.zeros((len(PERSONAS), 7, 24, len(PLACES), len(BEHAVIORS)), dtype=np.float32)
    for behavior, days, hours, places, personas, boost in _CONTEXT_RULES:
        who = list(personas) if personas is not None else list(range(len(PERSONAS)))
        idx = np.ix_(who, list(days), list(hours), [PLACE_INDEX[p] for p in places], [BEHAVIOR_INDEX[behavior]])
        t[idx] += boost
    return t


def sequence_table() -> np.ndarray:
    t = np.eye(len(BEHAVIORS), dtype=np.float32) * _REPEAT_BOOST
    for prev, nxt, boost in _SEQUENCE_RULES:
        t[BEHAVIOR_INDEX[prev], BEHAVIOR_INDEX[nxt]] += boost
    return t


def persona_table() -> np.ndarray:
    t = np.zeros((len(PERSONAS), len(BEHAVIORS)), dtype=np.float32)
    for persona, prefs in _PERSONA_AFFINITY.items():
        for behavior, value in prefs.items():
            t[persona, BEHAVIOR_INDEX[behavior]] = value
    return t
