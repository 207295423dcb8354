"""Rows read at matched head accuracy along their prior-correction curves, and Holm's correction."""

import numpy as np
import pytest

from behaviorlm_plugin.eval.curves import CURVE_ALPHAS, alpha_at_head, holm, matched_head_delta
from behaviorlm_plugin.runs.bench.evidence import primary_table

CATS = ["head", "tail"]


def test_alpha_at_head_interpolates_and_says_when_it_clamps():
    alphas = np.array([0.0, 0.5, 1.0])
    head = np.array([0.9, 0.7, 0.3])
    assert alpha_at_head(alphas, head, 0.8) == (pytest.approx(0.25), True)
    assert alpha_at_head(alphas, head, 0.5) == (pytest.approx(0.75), True)
    assert alpha_at_head(alphas, head, 0.95) == (0.0, False)  # above the curve: its end, flagged
    assert alpha_at_head(alphas, head, 0.1) == (1.0, False)


def test_holm_steps_down():
    out = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": None})
    assert out["a"] == {"p": 0.01, "p_holm": 0.03, "reject": True}
    assert out["c"]["p_holm"] == pytest.approx(0.06) and not out["c"]["reject"]
    assert out["b"]["p_holm"] == pytest.approx(0.06) and not out["b"]["reject"]  # monotone, and no reject after a stop
    assert out["d"] == {"p": None, "p_holm": None, "reject": False}


def _model(labels: np.ndarray, users: np.ndarray, shift: int) -> list[list[int]]:
    """Per α, predictions that move from head to tail as α grows: at grid step k the first (k + shift) / A of the
    users' samples are predicted 'tail' (code 1), the rest 'head' (code 0)."""
    n_users = users.max() + 1
    codes = []
    for k in range(len(CURVE_ALPHAS)):
        frac = min(k + shift, len(CURVE_ALPHAS) - 1) / (len(CURVE_ALPHAS) - 1)
        codes.append(np.where(users < frac * n_users, 1, 0).tolist())
    return codes


def test_a_rival_that_is_ours_shifted_along_alpha_ties_at_matched_head():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(60), 5)
    labels = rng.integers(0, 2, len(users))
    samples = {
        "ids": [str(i) for i in range(len(users))],
        "labels": labels.tolist(),
        "users": users.astype(str).tolist(),
    }
    ours_curve = {"alphas": list(CURVE_ALPHAS), "val_balanced": _model(labels, users, 0)}
    ours_curve["test_balanced"] = ours_curve["val_balanced"]
    rival_curve = {"alphas": list(CURVE_ALPHAS), "val_balanced": _model(labels, users, 1)}
    rival_curve["test_balanced"] = rival_curve["val_balanced"]
    results = {
        "ours": "ours",
        "categories": CATS,
        "eval_samples": {"val_balanced": samples, "test_balanced": samples},
        "variants": {
            "ours": {"per_seed": {"0": {"curve": ours_curve, "alpha": 0.5}}},
            "rival": {"per_seed": {"0": {"curve": rival_curve, "alpha": 0.5}}},
        },
        "primary": [{"row": "rival", "measure": "tail_at_matched_head", "val": "val_balanced"}],
    }
    res = matched_head_delta(results, "rival", val="val_balanced", n_boot=300)
    assert res["delta"] == pytest.approx(0.0, abs=1e-9)  # same model, further along: no tail gained at equal head
    assert res["ci95"][0] <= 0 <= res["ci95"][1] and res["resampled"] == "users and seeds"
    # At one alpha (0.5 each) the shifted rival looks better on tail: the reading this design avoids.
    tail = [np.mean(np.array(c["test_balanced"][2])[labels == 1] == 1) for c in (ours_curve, rival_curve)]
    assert tail[1] > tail[0]
    table = primary_table(results, n_boot=300)
    row = table["rival / tail_at_matched_head"]
    assert row["verdict"] == "no difference shown" and row["p_holm"] >= 0.05
