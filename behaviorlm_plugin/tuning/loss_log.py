"""A training run's loss, read from LLaMA-Factory's ``trainer_state.json``: the figures a reader needs to tell a
model that learned the context from one that learned the label prior (did the loss move, and how far)."""

from __future__ import annotations

import json
from pathlib import Path

STATE_FILE = "trainer_state.json"
CURVE_POINTS = 50
"""Points kept of the logged loss (evenly spaced, the last step always): enough to draw, small in results.json."""


def loss_summary(log_history: list[dict], points: int = CURVE_POINTS) -> dict | None:
    """``{"steps", "first", "last", "curve"}`` of a ``log_history``: the mean loss of the first and the last tenth of
    the logged steps (a tenth at least one entry), and ``points`` ``[step, loss]`` pairs; None when nothing was
    logged."""
    logged = [(int(e["step"]), float(e["loss"])) for e in log_history if "loss" in e and "step" in e]
    if not logged:
        return None
    tenth = max(1, len(logged) // 10)
    picks = sorted({round(i * (len(logged) - 1) / max(points - 1, 1)) for i in range(min(points, len(logged)))})
    return {
        "steps": logged[-1][0],
        "first": round(sum(loss for _, loss in logged[:tenth]) / tenth, 4),
        "last": round(sum(loss for _, loss in logged[-tenth:]) / tenth, 4),
        "curve": [[logged[i][0], round(logged[i][1], 4)] for i in picks],
    }


def read_loss(out_dir: str | Path) -> dict | None:
    """:func:`loss_summary` of a finished run's ``output_dir``; None when the run left no trainer state."""
    path = Path(out_dir) / STATE_FILE
    if not path.is_file():
        return None
    try:
        history = json.loads(path.read_text()).get("log_history", [])
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e}); delete the run's folder to train it again") from e
    return loss_summary(history)
