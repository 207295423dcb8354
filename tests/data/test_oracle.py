"""The oracle files of `prepare --synthetic` against a direct recomputation from the simulator's rules."""

import numpy as np
import pandas as pd
import pytest

from behaviorlm_plugin.data.oracle import ORACLE_SUFFIX, OracleError, read_oracle, rule_scores
from behaviorlm_plugin.data.simulator import SimulatorConfig, _skeleton, calibrated_bias, simulate_events
from behaviorlm_plugin.data.simulator_tables import (
    BEHAVIOR_INDEX,
    BEHAVIORS,
    PICKUP_BOOST,
    PLACES,
    context_table,
    sequence_table,
)
from behaviorlm_plugin.extras.fileio import read_jsonl


def _recompute(user_rows: pd.DataFrame, persona: int, preference: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The distribution of every event of one user, straight from the rules (not from the recording walk)."""
    ctx, seq = context_table(), sequence_table()
    pickup = BEHAVIOR_INDEX["Picking up the express delivery"]
    payment, shopping = BEHAVIOR_INDEX["Payment"], BEHAVIOR_INDEX["Shopping online"]
    out, prev, prev2, pending = [], -1, -1, False
    for ts, place, b in zip(user_rows["timestamp"], user_rows["place"], user_rows["behavior"], strict=True):
        logits = ctx[persona, ts.dayofweek, ts.hour, PLACES.index(place)].astype(np.float64) + preference + bias
        if prev >= 0:
            logits = logits + seq[prev]
        if pending:
            logits[pickup] += PICKUP_BOOST
        p = np.exp(logits - logits.max())
        out.append(p / p.sum())
        b = BEHAVIOR_INDEX[b]
        if b == payment and shopping in (prev, prev2):
            pending = True
        if b == pickup:
            pending = False
        prev2, prev = prev, b
    return np.array(out)


def test_oracle_matches_direct_recomputation(prepared):
    d, _ = prepared
    base = d / "beh"
    cfg = SimulatorConfig(num_users=60, num_days=14, seed=7)  # tests/conftest.py's small_prepare_args
    sk = _skeleton(cfg, np.random.default_rng(cfg.seed))
    bias = np.array(calibrated_bias(cfg.persona_weights, cfg.preference_noise, cfg.events_per_day))
    events = simulate_events(cfg)
    checked = 0
    for split in ("test", "test_balanced", "val"):
        index, probs, behaviors = read_oracle(base / f"{split}{ORACLE_SUFFIX}")
        metas = read_jsonl(base / f"{split}.meta.jsonl")
        assert len(index) == len(metas) and probs.shape == (len(metas), len(behaviors))
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
        for m in metas[:8]:
            u = int(m["user_id"][1:])
            rows = events[events["user_id"] == m["user_id"]].reset_index(drop=True)
            pos = int(np.flatnonzero(rows["timestamp"] == pd.Timestamp(m["timestamp"]))[0])
            assert rows["behavior"][pos] == m["label"]
            ref = _recompute(rows.iloc[: pos + 1], int(sk.persona[u]), sk.preference[u], bias)[-1]
            got = probs[index[m["id"]]]
            np.testing.assert_allclose(got, [ref[BEHAVIORS.index(b)] for b in behaviors], rtol=1e-4, atol=1e-7)
            checked += 1
    assert checked == 24


def test_rule_scores_move_along_the_frontier():
    rng = np.random.default_rng(0)
    freq = np.array([0.7, 0.25, 0.05])
    probs = rng.dirichlet(freq * 5, size=4000)
    labels = np.array([rng.choice(3, p=p) for p in probs])
    log_prior = np.log(freq)
    cats = ["head", "medium", "tail"]
    natural, balanced = (rule_scores(probs, labels, log_prior, a, cats) for a in (0.0, 1.0))
    assert natural["natural_accuracy"] > balanced["natural_accuracy"]
    assert balanced["tail"] > natural["tail"] and balanced["acc_avg"] > natural["acc_avg"]


def test_missing_oracle_file_is_a_clear_error(tmp_path):
    with pytest.raises(OracleError, match="prepare --synthetic"):
        read_oracle(tmp_path / "test.oracle.npz")
