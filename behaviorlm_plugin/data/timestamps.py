"""Timestamps in: epoch numbers, ISO strings with or without UTC offsets, into local wall-clock times.

The prompts show the day and hour a user *lived* an event, so by default each event keeps the local
wall-clock time it was written in: ``2024-03-01T08:00+09:00`` is 8 o'clock, whatever the offsets of
other rows.  ``timezone`` converts every event to one named zone instead (naive times are taken to
be in that zone already).  Epoch numbers are seconds, milliseconds, microseconds or nanoseconds,
told apart by magnitude (or named with ``timestamp_unit``); they are UTC instants, so without a
``timezone`` they show UTC wall-clock time.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

UNITS = ("auto", "s", "ms", "us", "ns")
# Plausible epoch magnitudes (absolute values) per unit: 1973..2286 in each.
EPOCH_RANGES = {"s": (1e8, 1e10), "ms": (1e11, 1e13), "us": (1e14, 1e16), "ns": (1e17, 1e19)}
OFFSET = re.compile(r"(?<=\d)\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$")
ISO_LIKE = re.compile(r"^\d{4}-\d{2}-\d{2}")


class TimestampError(ValueError):
    """Unparsable timestamps; carries the first bad row for the caller's message."""

    def __init__(self, message: str, row: int | None = None) -> None:
        super().__init__(message)
        self.row = row


def epoch_unit(values: np.ndarray, unit: str) -> str:
    """The unit of numeric timestamps: the one whose plausible range holds every value (checked when given too)."""
    finite = np.abs(values[np.isfinite(values)])
    if finite.size == 0:
        raise TimestampError("numeric timestamps are all missing")
    lo, hi = float(finite.min()), float(finite.max())
    if unit != "auto":
        a, b = EPOCH_RANGES[unit]
        if not (a <= lo and hi < b):
            fits = [n for n, (x, y) in EPOCH_RANGES.items() if x <= lo and hi < y]
            hint = f"they look like --timestamp-unit {fits[0]}" if fits else "check the column"
            raise TimestampError(
                f"numeric timestamps from {lo:.0f} to {hi:.0f} are not plausible epoch {unit} (1973-2286); {hint}"
            )
        return unit
    for name, (a, b) in EPOCH_RANGES.items():
        if a <= lo and hi < b:
            return name
    raise TimestampError(
        f"numeric timestamps from {lo:.0f} to {hi:.0f} are not epoch seconds, milliseconds, microseconds or "
        "nanoseconds of a plausible date (1973-2286); pass --timestamp-unit s|ms|us|ns, or give ISO 8601 strings"
    )


def _from_epoch(ts: pd.Series, unit: str, timezone: str | None) -> pd.Series:
    values = pd.to_numeric(ts, errors="coerce")
    unit = epoch_unit(values.to_numpy(dtype=float), unit)
    parsed = pd.to_datetime(values, unit=unit, utc=True, errors="coerce")
    return parsed.dt.tz_convert(timezone).dt.tz_localize(None) if timezone else parsed.dt.tz_localize(None)


def _from_text(ts: pd.Series, fmt: str | None, timezone: str | None) -> pd.Series:
    text = ts.astype("string").str.strip()
    has_time = text.str.contains(":", regex=False, na=False)
    offset = has_time & text.str.contains(OFFSET, na=False)
    if timezone is None:
        # Local wall-clock time: drop each value's own offset, keep the time it shows.
        local = text.where(~offset, text.str.replace(OFFSET, "", regex=True))
        return pd.to_datetime(local, format=fmt, errors="coerce")
    out = pd.Series(pd.NaT, index=ts.index, dtype="datetime64[ns]")
    if offset.any():
        aware = pd.to_datetime(text[offset], format=fmt, utc=True, errors="coerce")
        out[offset] = aware.dt.tz_convert(timezone).dt.tz_localize(None)
    if (~offset).any():
        out[~offset] = pd.to_datetime(text[~offset], format=fmt, errors="coerce")
    return out


def parse_timestamps(
    ts: pd.Series, *, fmt: str | None = None, unit: str = "auto", timezone: str | None = None
) -> pd.Series:
    """Naive ``datetime64[ns]`` local times; raises :class:`TimestampError` naming the first bad row."""
    if unit not in UNITS:
        raise TimestampError(f"timestamp unit must be one of {', '.join(UNITS)}; got {unit!r}")
    if pd.api.types.is_datetime64_any_dtype(ts):
        if getattr(ts.dt, "tz", None) is not None:
            ts = ts.dt.tz_convert(timezone) if timezone else ts
            ts = ts.dt.tz_localize(None)
        parsed = ts
    elif pd.api.types.is_numeric_dtype(ts) and not pd.api.types.is_bool_dtype(ts) and fmt is None:
        parsed = _from_epoch(ts, unit, timezone)
    elif pd.api.types.is_numeric_dtype(ts):  # digits read as numbers, e.g. 20240301081500 with --timestamp-format
        parsed = _from_text(ts.astype("Int64").astype("string"), fmt, timezone)
    else:
        parsed = _from_text(ts, fmt, timezone)
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = int(bad.nonzero()[0][0])
        value = ts.iloc[row]
        if pd.isna(value):
            raise TimestampError("is empty", row)
        hint = "pass --timestamp-format (strptime codes) for this layout"
        if isinstance(value, str) and ISO_LIKE.match(value.strip()):
            hint = "it looks like ISO 8601 but is not a valid date/time (check month, day and hour ranges)"
        raise TimestampError(f"cannot parse {value!r} as a time: {hint}", row)
    return parsed.astype("datetime64[ns]")


def far_from_span(ts: pd.Series, margin_days: int = 365) -> np.ndarray:
    """Events more than ``margin_days`` outside the central 98% of the log's dates (typos like 2099)."""
    if len(ts) < 10:
        return np.zeros(len(ts), dtype=bool)
    lo, hi = ts.quantile(0.01), ts.quantile(0.99)
    margin = pd.Timedelta(days=margin_days)
    return ((ts < lo - margin) | (ts > hi + margin)).to_numpy()


def order_key(raw: pd.Series, local: pd.Series, fmt: str | None = None) -> pd.Series:
    """What events are sorted by: the UTC instant where a value carries an offset (a traveller's events stay in
    the order they happened, though each shows its own local hour), else the local time itself."""
    if pd.api.types.is_datetime64_any_dtype(raw):
        return raw.dt.tz_convert("UTC").dt.tz_localize(None) if getattr(raw.dt, "tz", None) is not None else local
    if pd.api.types.is_numeric_dtype(raw) or len(raw) == 0:
        return local
    text = raw.astype("string").str.strip()
    offset = (text.str.contains(":", regex=False, na=False) & text.str.contains(OFFSET, na=False)).to_numpy()
    if not offset.any():
        return local
    out = local.copy()
    instant = pd.to_datetime(text[offset], format=fmt, utc=True, errors="coerce").dt.tz_localize(None)
    out[offset] = instant.fillna(local[offset])
    return out
