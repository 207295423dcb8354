"""A training run's loss, read from LLaMA-Factory's ``trainer_state.json``: did the LoRA move, and how far.

The loss is LLaMA-Factory's per-token mean over the answer tokens of a batch (an A-Tuning batch also holds the
general conversations of its mix), so it says whether training moved the model, not on its own whether the model
learned the context: the scores on a balanced split say that."""

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
    keep = min(points, len(logged))
    picks = sorted({round(i * (len(logged) - 1) / max(keep - 1, 1)) for i in range(keep)})
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
