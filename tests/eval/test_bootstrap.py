"""Paired bootstrap verdicts: a planted real difference is a win, a planted null difference is not."""

import numpy as np
import pytest

from behaviorlm_plugin.eval.bootstrap import ci_verdict, paired_bootstrap

CATS = ["head", "head", "medium", "tail"]


def _data(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.choice(4, size=n, p=[0.5, 0.3, 0.15, 0.05])
    return rng, labels


def _predict(rng, labels, acc):
    wrong = (labels + rng.integers(1, 4, size=len(labels))) % 4
    return np.where(rng.random(len(labels)) < acc, labels, wrong)


def test_planted_real_difference_is_a_win_and_its_mirror_a_loss():
    rng, y = _data()
    good = [_predict(rng, y, 0.70), _predict(rng, y, 0.70)]
    bad = [_predict(rng, y, 0.60), _predict(rng, y, 0.60)]
    for metric in ("accuracy", "acc_avg"):
        r = paired_bootstrap(y, good, bad, CATS, metric, n_boot=500)
        assert 0.05 < r["delta"] < 0.15 and r["ci95"][0] > 0
        assert ci_verdict(r) == "win"
        assert ci_verdict(paired_bootstrap(y, bad, good, CATS, metric, n_boot=500)) == "loss"


def test_planted_null_difference_is_not_a_verdict():
    rng, y = _data(seed=1)
    a = [_predict(rng, y, 0.65)]
    b = [_predict(rng, y, 0.65)]  # same accuracy, independent errors
    for metric in ("accuracy", "acc_avg", "acc_tail"):
        r = paired_bootstrap(y, a, b, CATS, metric, n_boot=500)
        assert r["ci95"][0] <= 0 <= r["ci95"][1]
        assert ci_verdict(r) == "within noise"


def test_identical_rows_and_missing_category():
    rng, y = _data(n=300, seed=2)
    p = [_predict(rng, y, 0.5)]
    r = paired_bootstrap(y, p, p, CATS, "acc_avg", n_boot=100)
    assert r["delta"] == 0 and r["ci95"] == [0.0, 0.0] and ci_verdict(r) == "within noise"
    none = paired_bootstrap(y, p, p, ["head"] * 4, "acc_tail", n_boot=50)
    assert none["ci95"] is None and ci_verdict(none) == "n/a"


def _clustered(n_users: int = 20, per_user: int = 10, seed: int = 0):
    """Each user's windows are identical: one label, and each row either right or wrong on all of them."""
    rng = np.random.default_rng(seed)
    y_user = rng.integers(0, 3, n_users)
    a_user = rng.random(n_users) < 0.7
    b_user = rng.random(n_users) < 0.4
    y = np.repeat(y_user, per_user)
    a = np.where(np.repeat(a_user, per_user), y, (y + 1) % 3)
    b = np.where(np.repeat(b_user, per_user), y, (y + 1) % 3)
    users = np.repeat([f"u{i}" for i in range(n_users)], per_user)
    return y, [a.tolist()], [b.tolist()], users.tolist()


def test_the_user_bootstrap_is_wider_than_the_window_bootstrap_on_clustered_data():
    y, a, b, users = _clustered()
    for metric in ("accuracy", "acc_avg"):
        windows = paired_bootstrap(y, a, b, CATS, metric, n_boot=2000)
        by_user = paired_bootstrap(y, a, b, CATS, metric, n_boot=2000, groups=users)
        assert by_user["delta"] == windows["delta"]  # the point estimate does not depend on the resampling
        width_w = windows["ci95"][1] - windows["ci95"][0]
        width_u = by_user["ci95"][1] - by_user["ci95"][0]
        assert width_u > 2 * width_w, (metric, width_w, width_u)  # ~sqrt(10) wider: 20 users, not 200 windows
        assert by_user["resampled"] == "users" and windows["resampled"] == "samples"


def test_one_user_per_window_is_the_window_bootstrap():
    y, a, b, _ = _clustered(per_user=1, n_users=200)
    plain = paired_bootstrap(y, a, b, CATS, "accuracy", n_boot=500, seed=3)
    each = paired_bootstrap(y, a, b, CATS, "accuracy", n_boot=500, seed=3, groups=[f"u{i}" for i in range(200)])
    assert plain["delta"] == each["delta"]
    assert abs((plain["ci95"][1] - plain["ci95"][0]) - (each["ci95"][1] - each["ci95"][0])) < 0.03


def test_resampling_seeds_widens_the_interval_when_seeds_disagree():
    y = np.tile([0, 1, 2], 100)
    good = [y.tolist()]
    # Two seeds of one row: one perfect, one always wrong; the other row is in between at one seed.
    spread = [y.tolist(), ((y + 1) % 3).tolist()]
    mid = [np.where(np.arange(len(y)) % 2 == 0, y, (y + 1) % 3).tolist()]
    fixed = paired_bootstrap(y, spread, mid, CATS, "accuracy", n_boot=1000)
    with_seeds = paired_bootstrap(y, spread, mid, CATS, "accuracy", n_boot=1000, resample_seeds=True)
    assert fixed["ci95"][1] - fixed["ci95"][0] < 0.2 < with_seeds["ci95"][1] - with_seeds["ci95"][0]
    assert with_seeds["resampled"] == "samples and seeds"
    same = paired_bootstrap(y, good, good, CATS, "accuracy", n_boot=100, resample_seeds=True)
    assert same["ci95"] == [0.0, 0.0]
    with pytest.raises(ValueError, match="one per sample"):
        paired_bootstrap(y, good, good, CATS, "accuracy", groups=["u"] * 3)
