"""Paired bootstrap verdicts: a planted real difference is a win, a planted null difference is not."""

import numpy as np

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
