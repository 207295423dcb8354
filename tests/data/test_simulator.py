import numpy as np
import pandas as pd
import pytest

from behaviorlm_plugin.data.samples import context_baseline, encode_events, split_users, window_targets
from behaviorlm_plugin.data.simulator import (
    BEHAVIORS,
    PAPER_BEHAVIOR_PROPORTIONS,
    SimulatorConfig,
    simulate_events,
    total_variation,
    user_personas,
)


@pytest.fixture(scope="module")
def events():
    return simulate_events(SimulatorConfig(num_users=400, num_days=30, seed=3))


def test_paper_table_is_complete_and_normalised():
    assert len(BEHAVIORS) == 35
    assert abs(sum(PAPER_BEHAVIOR_PROPORTIONS.values()) - 1.0) < 1e-3


def test_marginal_matches_paper_table(events):
    counts = events["behavior"].value_counts()
    assert total_variation(counts.to_dict()) <= 0.05
    freq = counts / counts.sum()
    assert 0.95 <= freq[freq > 0.01].sum() <= 0.99  # anchors cover ~97% of events
    assert set(events["behavior"].cat.categories) == set(BEHAVIORS)


def test_seeded_and_deterministic():
    a = simulate_events(SimulatorConfig(num_users=30, num_days=5, seed=1))
    b = simulate_events(SimulatorConfig(num_users=30, num_days=5, seed=1))
    c = simulate_events(SimulatorConfig(num_users=30, num_days=5, seed=2))
    pd.testing.assert_frame_equal(a, b)
    assert not a["behavior"].equals(c["behavior"])


def test_sorted_by_user_then_time(events):
    assert events["user_id"].cat.codes.is_monotonic_increasing
    assert events.groupby("user_id", observed=True)["timestamp"].is_monotonic_increasing.all()


def _rate(ev, mask, behavior):
    sub = ev.loc[mask, "behavior"]
    return (sub == behavior).mean()


def test_context_routines(events):
    ev = events
    hour, dow, place = ev["timestamp"].dt.hour, ev["timestamp"].dt.dayofweek, ev["place"]
    commute = (dow < 5) & hour.isin([7, 8]) & (place == "transit")
    assert _rate(ev, commute, "Taking subway") > 4 * _rate(ev, ~commute, "Taking subway")
    noon = hour.isin([11, 12]) & place.isin(["workplace", "school"])
    assert _rate(ev, noon, "Ordering takeout") > 4 * _rate(ev, ~noon, "Ordering takeout")
    night_out = hour.isin([22, 23, 0, 1]) & place.isin(["outdoors", "transit"])
    assert _rate(ev, night_out, "Hailing taxi") > 10 * _rate(ev, ~night_out, "Hailing taxi")
    weekend_evening_home = (dow >= 5) & hour.isin([19, 20, 21, 22]) & (place == "home")
    assert _rate(ev, weekend_evening_home, "Watching Match") > 10 * _rate(ev, ~weekend_evening_home, "Watching Match")


def test_sequential_links(events):
    prev = events["behavior"].shift(1)
    same_user = events["user_id"].eq(events["user_id"].shift(1))
    after_photos = same_user & (prev == "Taking photos")
    assert _rate(events, after_photos, "Editing video") > 2 * _rate(events, ~after_photos, "Editing video")
    after_shopping = same_user & (prev == "Shopping online")
    assert _rate(events, after_shopping, "Payment") > 3 * _rate(events, ~after_shopping, "Payment")


def test_personas_shape_preferences(events):
    personas = user_personas(SimulatorConfig(num_users=400, num_days=30, seed=3))
    student = personas[events["user_id"].cat.codes.to_numpy()] == 1
    assert _rate(events, student, "Studying for course") > 2 * _rate(events, ~student, "Studying for course")


def test_context_baseline_beats_majority(events):
    enc = encode_events(events)
    targets = window_targets(enc.user, 20)
    split = split_users(len(enc.users), seed=0)[enc.user[targets]]
    base = context_baseline(enc, targets[split == 0], targets[split == 2])
    assert base["hour_place_accuracy"] > base["majority_accuracy"]
    assert base["majority_class"] == "Watching video clip"


def test_bad_config_is_refused():
    with pytest.raises(ValueError):
        SimulatorConfig(num_users=0)
    with pytest.raises(ValueError):
        SimulatorConfig(persona_weights=(1.0,))


def test_total_variation_basics():
    assert total_variation({"a": 1, "b": 1}, {"a": 0.5, "b": 0.5}) == pytest.approx(0.0)
    assert total_variation({"a": 1}, {"b": 1.0}) == pytest.approx(1.0)
    assert np.isfinite(total_variation({"Gaming": 3}))
