"""The loss a training run logged, as the bench records it per row (first and last tenth, a short curve)."""

from __future__ import annotations

import json

import pytest

from behaviorlm_plugin.tuning.loss_log import loss_summary, read_loss


def test_the_summary_averages_the_first_and_last_tenth_and_keeps_the_last_step():
    history = [{"step": i, "loss": 3.0 if i <= 10 else 1.0, "learning_rate": 1e-3} for i in range(1, 101)]
    history.append({"step": 100, "train_loss": 1.2, "train_runtime": 5.0})  # the end-of-run record has no "loss"
    s = loss_summary(history, points=5)
    assert s["steps"] == 100 and s["first"] == 3.0 and s["last"] == 1.0
    assert [step for step, _ in s["curve"]] == [1, 26, 51, 75, 100]  # evenly spaced indices, rounded
    assert loss_summary([{"step": 1, "train_loss": 0.5}]) is None
    short = loss_summary([{"step": i, "loss": 1.0} for i in range(1, 13)], points=50)  # fewer entries than points
    assert [step for step, _ in short["curve"]] == list(range(1, 13))


def test_a_run_without_a_trainer_state_has_no_loss_and_a_broken_one_names_the_file(tmp_path):
    assert read_loss(tmp_path) is None
    (tmp_path / "trainer_state.json").write_text(json.dumps({"log_history": [{"step": 2, "loss": 0.7}]}))
    assert read_loss(tmp_path)["last"] == 0.7
    (tmp_path / "trainer_state.json").write_text("{")
    with pytest.raises(ValueError, match=r"trainer_state\.json"):
        read_loss(tmp_path)
