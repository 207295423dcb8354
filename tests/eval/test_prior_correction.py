import numpy as np
import pytest

from behaviorlm_plugin.eval.prior_correction import (
    PriorCorrectionError,
    adjust_log_probs,
    check_alpha,
    corrected_probs,
    log_prior,
)

FREQ = {"a": 0.7, "b": 0.25, "c": 0.05, "d": 0.0}


def test_alpha_zero_keeps_the_argmax_and_renormalises():
    p = np.array([0.5, 0.3, 0.1, 0.1])
    out = corrected_probs(p * 2, log_prior(FREQ, list("abcd")), 0)
    np.testing.assert_allclose(out, p)


def test_alpha_one_divides_by_the_prior():
    p = np.array([0.6, 0.3, 0.1])
    lp = log_prior(FREQ, list("abc"))
    out = corrected_probs(p, lp, 1.0)
    want = (p / np.array([0.7, 0.25, 0.05])) / (p / np.array([0.7, 0.25, 0.05])).sum()
    np.testing.assert_allclose(out, want)
    assert out.argmax() == 2  # the rare class wins once the prior is divided out


def test_unseen_behavior_gets_a_finite_floor_and_batches_work():
    lp = log_prior(FREQ, list("abcd"))
    assert np.isfinite(lp).all() and lp[3] < lp[2]
    batch = np.log(np.full((3, 4), 0.25))
    assert adjust_log_probs(batch, lp, 0.5).shape == (3, 4)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "x", None])
def test_bad_alpha_is_refused(bad):
    with pytest.raises(PriorCorrectionError, match="alpha"):
        check_alpha(bad)


def test_unknown_candidate_names_the_fix():
    with pytest.raises(PriorCorrectionError, match="--stats"):
        log_prior(FREQ, ["a", "zzz"])
