import numpy as np
import pandas as pd
import pytest

from behaviorlm_plugin.data.samples import (
    balanced_subset,
    encode_events,
    frequency_categories,
    history_indices,
    split_users,
    subsample,
    window_targets,
)


def test_window_targets_respect_user_boundaries():
    user = np.array([0, 0, 0, 1, 1, 1, 1, 2])
    t = window_targets(user, 2)
    assert t.tolist() == [2, 5, 6]
    hist = history_indices(t, 2)
    assert hist.tolist() == [[0, 1], [3, 4], [4, 5]]
    assert (user[hist] == user[t][:, None]).all()


def test_window_targets_bruteforce_agreement():
    rng = np.random.default_rng(0)
    user = np.repeat(np.arange(50), rng.integers(1, 40, size=50))
    h = 5
    expected = [i for i in range(len(user)) if i >= h and all(user[i - k] == user[i] for k in range(1, h + 1))]
    assert window_targets(user, h).tolist() == expected
    with pytest.raises(ValueError):
        window_targets(user, 0)


def test_split_users_ratio_seed_and_disjoint():
    a = split_users(1000, seed=1)
    assert np.bincount(a).tolist() == [800, 100, 100]
    assert (a == split_users(1000, seed=1)).all() and not (a == split_users(1000, seed=2)).all()
    with pytest.raises(ValueError):
        split_users(10, (0.5, 0.5, 0.5))


def test_frequency_categories_thresholds():
    behaviors = ("a", "b", "c", "d")
    labels = np.array([0] * 90 + [1] * 6 + [2] * 4)
    cats = frequency_categories(labels, behaviors, anchor_threshold=0.05, head_threshold=0.5, medium_threshold=0.05)
    assert cats.anchor_tail == {"a": "anchor", "b": "anchor", "c": "tail", "d": "tail"}
    assert cats.head_medium_tail == {"a": "head", "b": "medium", "c": "tail", "d": "tail"}
    assert cats.counts["d"] == 0
    with pytest.raises(ValueError):
        frequency_categories(labels, behaviors, head_threshold=0.01, medium_threshold=0.05)


def test_balanced_subset_caps_per_class_and_reports():
    labels = np.array([0] * 50 + [1] * 3 + [2] * 10)
    targets = np.arange(len(labels))
    out, got = balanced_subset(targets, labels, 4, 5, np.random.default_rng(0))
    assert got.tolist() == [5, 3, 5, 0]
    assert np.bincount(labels[out], minlength=4).tolist() == [5, 3, 5, 0]


def test_subsample_is_seeded():
    t = np.arange(100)
    a = subsample(t, 10, np.random.default_rng(3))
    assert len(a) == 10 and (a == subsample(t, 10, np.random.default_rng(3))).all()
    assert subsample(t, None, np.random.default_rng(3)) is t


def test_encode_refuses_ungrouped_users():
    df = pd.DataFrame(
        {"user_id": ["a", "b", "a"], "timestamp": pd.to_datetime(["2024-01-01"] * 3), "place": "p", "behavior": "x"}
    )
    with pytest.raises(ValueError, match="grouped by user"):
        encode_events(df)
