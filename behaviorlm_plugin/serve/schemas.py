"""Request and response bodies of the API (pydantic: FastAPI checks them and draws the OpenAPI docs).

Structural checks (types, ranges, finite numbers, exactly one way to give an event's time) live here and
answer 422 with the field's location; checks against the model (known behaviors, prompt formats, context length)
live in :mod:`behaviorlm_plugin.serve.prompting`.
"""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from behaviorlm_plugin.data.prompts import DAY_NAMES

FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
TEXT_LIMIT = 200  # characters of a behavior, place, format or id
# Python's json reads NaN, Infinity, -Infinity (and 1e999 as Infinity); no request field may hold one.
FINITE = ConfigDict(extra="forbid", allow_inf_nan=False)


def day_index(day: str) -> int:
    """``Mon``/``monday`` (any case) -> 0..6; ValueError otherwise."""
    key = day.strip().lower()
    for i, (short, full) in enumerate(zip(DAY_NAMES, FULL_DAY_NAMES, strict=True)):
        if key in (short.lower(), full):
            return i
    raise ValueError(f"day must be one of {', '.join(DAY_NAMES)} (or the full English name), got {day!r}")


class When(BaseModel):
    """An event's time: ``day`` + ``hour`` (local wall-clock), or a ``timestamp`` converted as ``prepare`` does."""

    model_config = FINITE

    day: str | None = Field(default=None, max_length=TEXT_LIMIT, description="Mon..Sun (or Monday..Sunday).")
    hour: int | None = Field(default=None, ge=0, le=23, description="Local hour, 0-23.")
    timestamp: str | int | float | None = Field(
        default=None,
        description="ISO 8601 (its own UTC offset is dropped: local wall-clock time) or epoch s/ms/us/ns.",
    )
    place: str = Field(min_length=1, max_length=TEXT_LIMIT, description="Where the event happens.")

    @field_validator("day")
    @classmethod
    def _known_day(cls, v: str | None) -> str | None:
        if v is not None:
            day_index(v)
        return v

    @field_validator("timestamp", mode="before")
    @classmethod
    def _sane_timestamp(cls, v):
        # Before the union is tried: one clear error rather than one per member (str, int, float).
        if isinstance(v, str) and len(v) > 64:
            raise ValueError("timestamp is longer than 64 characters")
        if isinstance(v, bool) or (isinstance(v, float) and not math.isfinite(v)):
            raise ValueError("timestamp must be an ISO 8601 string or a finite epoch number")
        return v

    @model_validator(mode="after")
    def _one_time(self):
        by_day = self.day is not None or self.hour is not None
        if by_day and self.timestamp is not None:
            raise ValueError("give either day + hour or timestamp, not both")
        if self.timestamp is None and (self.day is None or self.hour is None):
            raise ValueError("give day and hour (or a timestamp)")
        return self


class HistoryEvent(When):
    behavior: str = Field(min_length=1, max_length=TEXT_LIMIT, description="One of GET /v1/behaviors.")


class NextEvent(When):
    pass


EXAMPLE_REQUEST = {
    "history": [
        {"day": "Fri", "hour": 16, "place": "home", "behavior": "Exercising"},
        {"timestamp": "2024-03-01T20:05:00+09:00", "place": "home", "behavior": "Gaming"},
    ],
    "next": {"day": "Fri", "hour": 21, "place": "home"},
    "top_k": 3,
    "id": "user-42",
}


class PredictRequest(BaseModel):
    model_config = ConfigDict(**FINITE, json_schema_extra={"examples": [EXAMPLE_REQUEST]})

    history: list[HistoryEvent] = Field(min_length=1, description="The user's recent events, oldest first.")
    next: NextEvent = Field(description="The next event's context (its time and place).")
    candidates: list[str] | None = Field(
        default=None, min_length=1, description="Rank only these behaviors (the prompt still lists all)."
    )
    top_k: int = Field(default=5, ge=1, le=10_000, description="Ranked behaviors to return.")
    prompt_format: str | None = Field(default=None, max_length=TEXT_LIMIT, description="Default: the model's first.")
    alpha: float | None = Field(default=None, ge=0, description="Prior correction; default: the server's.")
    timezone: str | None = Field(default=None, max_length=64, description="IANA zone for timestamps.")
    id: str | None = Field(default=None, max_length=TEXT_LIMIT, description="Echoed in the response.")


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"requests": [EXAMPLE_REQUEST]}]})

    requests: list[PredictRequest] = Field(min_length=1, description="Predictions to make, answered in order.")


class RankedBehavior(BaseModel):
    behavior: str
    prob: float = Field(description="Probability over the ranked candidates (after the prior correction).")
    anchor_tail: str
    head_medium_tail: str


class PredictResponse(BaseModel):
    id: str | None = None
    prediction: str = Field(description="The top-ranked behavior.")
    ranked: list[RankedBehavior]
    model: str
    alpha: float
    prompt_format: str
    history_events: int = Field(description="Events of history used.")
    short_history: bool = Field(description="True when the history is shorter than the model's training length.")
    training_history_len: int


class BatchResponse(BaseModel):
    responses: list[PredictResponse]


class BehaviorInfo(BaseModel):
    behavior: str
    anchor_tail: str
    head_medium_tail: str
    train_frequency: float


class BehaviorsResponse(BaseModel):
    model: str
    behaviors: list[BehaviorInfo]
    prompt_formats: list[str]
    training_history_len: int


class HealthResponse(BaseModel):
    status: str
    model: str
    queued: int = Field(description="Samples waiting for the scorer.")
    running: int = Field(description="Samples in the batch being scored (0: the scorer is idle).")
    batches: int
    samples: int


class ErrorMessage(BaseModel):
    """The body of a 400, 401, 413, 503 or 504 answer."""

    detail: str = Field(description="What went wrong and what to do.")


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="The field's path in the body, from 'body'.")
    msg: str
    type: str
    input: Any = Field(default=None, description="The value sent; as text where JSON cannot hold it (NaN).")
    ctx: dict[str, Any] | None = None


class ValidationErrorResponse(BaseModel):
    """The body of a 422 answer: one entry per bad field."""

    detail: list[FieldError]


def json_safe(value: Any) -> Any:
    """``value`` when JSON can hold it, else its text as Python's json writes it (``NaN``, ``Infinity``):
    an error answer may echo the input, and a non-finite number would fail the answer itself."""
    try:
        json.dumps(value, allow_nan=False)
        return value
    except (ValueError, TypeError, RecursionError):
        pass
    try:
        return json.dumps(value, allow_nan=True, default=str)
    except (ValueError, RecursionError):
        return None
