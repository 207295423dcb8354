"""The prior-corrected decision rule: rank by ``log p(b | x) - alpha * log prior(b)``.

``alpha = 0`` is the plain argmax (the natural-accuracy rule); ``alpha = 1`` divides by the training
prior (the balanced rule of logit adjustment, Menon et al. 2021). Any model that gives candidate scores
can move along the anchor/tail frontier this way, so the rule is shared by ``predict``, ``evaluate``,
the pipeline, the bench and ``serve``. The prior is each behavior's ``train_frequency`` in ``stats.json``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

# A behavior never seen in training would get log 0 = -inf; floor it at a tenth of one training sample
# in a million so that alpha > 0 favours it strongly but finitely.
PRIOR_FLOOR = 1e-7


class PriorCorrectionError(ValueError):
    """A bad alpha or a candidate without a prior; the message names it and the fix."""


def check_alpha(alpha: float, *, source: str = "prior_correction") -> float:
    """A finite alpha >= 0, or a clear error naming ``source``."""
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise PriorCorrectionError(f"{source}: {alpha!r} is not a number; give alpha >= 0 (0 = plain argmax)") from None
    if not np.isfinite(a) or a < 0:
        raise PriorCorrectionError(f"{source}: alpha must be a finite number >= 0 (0 = plain argmax), got {alpha!r}")
    return a


def log_prior(frequency: Mapping[str, float], candidates: Sequence[str]) -> np.ndarray:
    """``log prior`` per candidate, in the candidates' order, from ``{behavior: train_frequency}``."""
    missing = [c for c in candidates if c not in frequency]
    if missing:
        raise PriorCorrectionError(
            f"no training prior for {missing[:5]}: these candidates are not behaviors of the dataset's "
            "stats.json; pass the --stats of the dataset the model was tuned on"
        )
    f = np.array([float(frequency[c] or 0.0) for c in candidates], dtype=np.float64)
    return np.log(np.maximum(f, PRIOR_FLOOR))


def adjust_log_probs(log_probs: np.ndarray, log_prior_: np.ndarray, alpha: float) -> np.ndarray:
    """Scores under the rule (any leading batch shape; the last axis is the candidates)."""
    a = check_alpha(alpha)
    if a == 0:
        return np.asarray(log_probs, dtype=np.float64)
    return np.asarray(log_probs, dtype=np.float64) - a * np.asarray(log_prior_, dtype=np.float64)


def corrected_probs(probs: np.ndarray, log_prior_: np.ndarray, alpha: float) -> np.ndarray:
    """Candidate probabilities renormalised under the rule: ``softmax(log p - alpha * log prior)``.

    With alpha = 0 this is ``probs`` renormalised; the ranking of the result is the rule's decision."""
    p = np.asarray(probs, dtype=np.float64)
    with np.errstate(divide="ignore"):
        z = adjust_log_probs(np.log(np.maximum(p, 0.0)), log_prior_, alpha)
    z = z - np.max(z, axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
