"""A request -> the prompt the model was tuned on, rendered by the same code as ``prepare``.

The request's events become a one-user :class:`EncodedEvents` and go through
:func:`behaviorlm_plugin.data.prompts.render_prompts`, with the model's behaviors in vocabulary order as
the candidate list. A candidate subset only narrows what is ranked: the prompt still lists every
behavior, as in training, and the probabilities are renormalised over the subset.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass

import numpy as np
import pandas as pd

from behaviorlm_plugin.data.prompts import PromptOptions, available_formats, render_prompts, system_prompt
from behaviorlm_plugin.data.samples import EncodedEvents
from behaviorlm_plugin.data.serving_manifest import ServingManifest
from behaviorlm_plugin.data.timestamps import TimestampError, parse_timestamps
from behaviorlm_plugin.serve.schemas import PredictRequest, When, day_index


class RequestError(ValueError):
    """Bad input for this model: ``loc`` is the field's path in the body (as FastAPI reports it)."""

    def __init__(self, loc: tuple, message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message

    def detail(self, prefix: tuple = ("body",)) -> dict:
        return {"loc": [*prefix, *self.loc], "msg": self.message, "type": "value_error"}


@dataclass(frozen=True)
class RenderedSample:
    """One request as the scorer sees it."""

    system: str
    prompt: str
    candidates: list[str]
    prompt_format: str
    history_events: int


def _day_hour(when: When, tz: str | None, loc: tuple) -> tuple[int, int]:
    if when.timestamp is None:
        return day_index(when.day), int(when.hour)
    try:
        t = parse_timestamps(pd.Series([when.timestamp]), timezone=tz).iloc[0]
    except TimestampError as err:
        raise RequestError((*loc, "timestamp"), str(err)) from None
    except (ValueError, OverflowError, TypeError) as err:  # pandas' own out-of-bounds dates
        raise RequestError((*loc, "timestamp"), f"cannot read {when.timestamp!r} as a time: {err}") from None
    return int(t.dayofweek), int(t.hour)


def _timezone(req: PredictRequest, manifest: ServingManifest) -> str | None:
    tz = req.timezone if req.timezone is not None else manifest.timezone
    if req.timezone is not None:
        try:
            zoneinfo.ZoneInfo(req.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise RequestError(
                ("timezone",), f"{req.timezone!r} is not an IANA zone name (e.g. Europe/Paris)"
            ) from None
    return tz


def check_request(req: PredictRequest, manifest: ServingManifest) -> tuple[str, list[str]]:
    """The prompt format and the candidates to rank; a :class:`RequestError` naming the first bad field."""
    known = set(manifest.behaviors)
    if len(req.history) > manifest.history_len:
        raise RequestError(
            ("history",),
            f"{len(req.history)} events is longer than the model's context of {manifest.history_len} "
            f"(its training history length); send the last {manifest.history_len}",
        )
    for i, ev in enumerate(req.history):
        if ev.behavior not in known:
            raise RequestError(("history", i, "behavior"), f"unknown behavior {ev.behavior!r}; see GET /v1/behaviors")
    candidates = list(manifest.behaviors)
    if req.candidates is not None:
        for j, c in enumerate(req.candidates):
            if c not in known:
                raise RequestError(("candidates", j), f"unknown behavior {c!r}; see GET /v1/behaviors")
        if len(set(req.candidates)) != len(req.candidates):
            raise RequestError(("candidates",), "each candidate once")
        candidates = list(req.candidates)
    fmt = req.prompt_format or manifest.prompt_formats[0]
    if fmt not in available_formats():
        raise RequestError(("prompt_format",), f"unknown prompt format {fmt!r}; available: {list(available_formats())}")
    return fmt, candidates


def render_request(req: PredictRequest, manifest: ServingManifest) -> RenderedSample:
    """Check ``req`` against the model and render its prompt exactly as ``prepare`` renders a sample."""
    fmt, candidates = check_request(req, manifest)
    tz = _timezone(req, manifest)
    events = [*req.history, req.next]
    times = [_day_hour(ev, tz, ("history", i)) for i, ev in enumerate(req.history)]
    times.append(_day_hour(req.next, tz, ("next",)))
    places = sorted({ev.place for ev in events})
    code = {b: i for i, b in enumerate(manifest.behaviors)}
    n = len(events)
    enc = EncodedEvents(
        user=np.zeros(n, dtype=np.int64),
        behavior=np.array([code[ev.behavior] for ev in req.history] + [0], dtype=np.int64),
        place=np.array([places.index(ev.place) for ev in events], dtype=np.int64),
        dow=np.array([d for d, _ in times], dtype=np.int64),
        hour=np.array([h for _, h in times], dtype=np.int64),
        timestamp=np.zeros(n, dtype="datetime64[ns]"),
        users=("user",),
        behaviors=tuple(manifest.behaviors),
        places=tuple(places),
    )
    options = PromptOptions(formats=(fmt,), shuffle_candidates=False)
    target = np.array([n - 1])
    prompts, _, _ = render_prompts(enc, target, np.arange(n - 1)[None, :], np.random.default_rng(0), options)
    return RenderedSample(system_prompt(), prompts[0], candidates, fmt, len(req.history))
