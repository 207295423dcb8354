"""The ``prior_correction`` block: rank candidates by ``score - alpha * log prior`` (``docs/evaluation.md``).

One block, one name, wherever a decision is made: ``evaluation.prior_correction`` in a pipeline or a suite,
each suite variant's ``prior_correction``, ``behaviorlm predict``/``evaluate --prior-correction`` and
``behaviorlm serve --prior-correction``. A bare value is the block's ``alpha``
(``prior_correction: auto`` is ``prior_correction: {alpha: auto}``), so short configs stay short.

This module parses and checks values only; applying the rule is :mod:`behaviorlm_plugin.eval.prior_correction`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal

AUTO = "auto"
DEFAULT_ALPHA_GRID: tuple[float, ...] = tuple(round(0.1 * i, 2) for i in range(16))
"""alpha = 0, 0.1, …, 1.5: past 1 the rule over-corrects on most data, but a model may be over-confident."""
CHOOSE_ON_SPLITS: tuple[str, ...] = ("val", "val_balanced")
"""Splits ``auto`` may choose alpha on (never a test split): the natural val split, or the class-balanced one, whose
every behavior has samples (a choice for the class-mean accuracy should be made there)."""


class PriorCorrectionError(ValueError):
    """A bad alpha or a candidate without a prior; the message names it and the fix."""


def check_alpha(alpha: float, *, source: str = "prior_correction.alpha") -> float:
    """A finite alpha >= 0, or a clear error naming ``source``."""
    if isinstance(alpha, bool):
        raise PriorCorrectionError(f"{source}: {alpha!r} is not a number; give alpha >= 0 (0 = plain argmax)")
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise PriorCorrectionError(f"{source}: {alpha!r} is not a number; give alpha >= 0 (0 = plain argmax)") from None
    if not math.isfinite(a) or a < 0:
        raise PriorCorrectionError(f"{source}: alpha must be a finite number >= 0 (0 = plain argmax), got {alpha!r}")
    return a


def parse_alpha(value, *, source: str = "prior_correction.alpha") -> float | str:
    """``auto`` or a finite alpha >= 0 (``0`` = the plain argmax)."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise PriorCorrectionError(
                f"{source}: {value!r} is neither 'auto' nor a number; give auto or alpha >= 0"
            ) from None
    return check_alpha(value, source=source)


@dataclass
class PriorCorrectionArguments:
    r"""The prior correction, the one decision rule of evaluate, predict, the pipeline, the bench and serve.

    Rule:
        alpha: 0 = the plain argmax (natural accuracy), 1 = the balanced rule (divide by the training prior),
        ``auto`` = chosen on ``choose_on``'s predictions. Unset (``None``) means 0, except in ``serve``,
        where it means the alpha the exported model carries.
    auto only:
        choose_on (the split alpha is chosen on), alpha_grid (the alphas tried), head_floor (keep head
        accuracy on that split at or above it; without it, the best mean per-class accuracy wins).
    """

    SHORTHAND: ClassVar[str] = "alpha"
    """A bare value given for the block sets this field (``prior_correction: 0.5``)."""

    alpha: float | str | None = field(
        default=None,
        metadata={
            "help": "0 (plain argmax, the default), a number alpha >= 0 (1 = the balanced rule), or auto "
            "(chosen on choose_on's predictions). serve: unset keeps the exported model's alpha."
        },
    )
    head_floor: float | None = field(
        default=None,
        metadata={"help": "auto: keep head accuracy on choose_on >= this (else: best mean per-class accuracy)."},
    )
    alpha_grid: list[float] = field(
        default_factory=lambda: list(DEFAULT_ALPHA_GRID), metadata={"help": "auto: the alphas tried."}
    )
    choose_on: Literal["val", "val_balanced"] = field(
        default="val",
        metadata={"help": "auto: the split alpha is chosen on (val, or the class-balanced val_balanced)."},
    )

    def __post_init__(self) -> None:
        if self.alpha is not None:
            self.alpha = parse_alpha(self.alpha)
        if self.head_floor is not None and not 0 <= self.head_floor <= 1:
            raise PriorCorrectionError(f"prior_correction.head_floor must be in [0, 1], got {self.head_floor}")
        if not self.alpha_grid:
            raise PriorCorrectionError("prior_correction.alpha_grid must be a non-empty list of alphas >= 0")
        self.alpha_grid = [check_alpha(a, source="prior_correction.alpha_grid") for a in self.alpha_grid]
        if self.choose_on not in CHOOSE_ON_SPLITS:
            raise PriorCorrectionError(
                f"prior_correction.choose_on must be one of {', '.join(CHOOSE_ON_SPLITS)}, got {self.choose_on!r}"
            )

    @property
    def setting(self) -> float | str:
        """The alpha to apply: a number (unset = 0) or ``auto``."""
        return 0.0 if self.alpha is None else self.alpha

    @property
    def is_auto(self) -> bool:
        return self.alpha == AUTO

    @property
    def active(self) -> bool:
        """Whether the rule changes anything (a nonzero alpha, or auto)."""
        return self.setting != 0


def as_prior_correction(value: PriorCorrectionArguments | float | str | None) -> PriorCorrectionArguments:
    """The block from itself or from a bare alpha (``0.5``, ``"auto"``): what the YAML shorthand gives a config
    file, this gives Python callers (``PredictArguments(..., prior_correction=0.5)``)."""
    if isinstance(value, PriorCorrectionArguments):
        return value
    if isinstance(value, dict):
        return PriorCorrectionArguments(**value)
    return PriorCorrectionArguments(alpha=value)
