"""Foursquare TSMC2014 check-ins (``dataset_TSMC2014_NYC.txt`` / ``dataset_TSMC2014_TKY.txt``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from behaviorlm_plugin.data.events import BehaviorDataError, EventStats, validate_events
from behaviorlm_plugin.data.loaders.text_fields import INT_RE, first_bad, read_fields

__all__ = ["FOURSQUARE_COLUMNS", "FOURSQUARE_TIME_FORMAT", "load_foursquare_tsmc"]

FOURSQUARE_COLUMNS: tuple[str, ...] = (
    "user_id",
    "venue_id",
    "venue_category_id",
    "venue_category",
    "latitude",
    "longitude",
    "timezone_offset",
    "utc_time",
)
FOURSQUARE_TIME_FORMAT = "%a %b %d %H:%M:%S %z %Y"  # e.g. "Tue Apr 03 18:00:09 +0000 2012"


def _grid_label(lat: pd.Series, lon: pd.Series) -> pd.Series:
    """``g<lat>_<lon>`` with both rounded to 2 decimals (0.01° ≈ 1.1 km north-south)."""

    def fmt(values: pd.Series) -> pd.Series:
        rounded = values.round(2) + 0.0  # "+ 0.0" turns -0.0 into 0.0
        uniq = pd.unique(rounded)  # format each distinct value once
        return rounded.map(dict(zip(uniq, (f"{v:.2f}" for v in uniq), strict=True)))

    return "g" + fmt(lat) + "_" + fmt(lon)


def _local_time(path: Path, raw: pd.DataFrame, lines: np.ndarray) -> pd.Series:
    """UTC time + timezone offset, as a naive local wall-clock time."""
    offset_ok = raw["timezone_offset"].str.fullmatch(INT_RE)
    if not offset_ok.all():
        i, line = first_bad(path, lines, ~offset_ok)
        raise BehaviorDataError(
            f"{path}: line {line}: column 7 (timezone offset) is {raw['timezone_offset'].iloc[i]!r}, "
            "not a whole number of minutes (e.g. -240). Fix or delete that line."
        )
    offset = pd.to_timedelta(raw["timezone_offset"].astype("int64"), unit="min")

    utc = pd.to_datetime(raw["utc_time"], format=FOURSQUARE_TIME_FORMAT, utc=True, errors="coerce")
    if utc.isna().any():
        i, line = first_bad(path, lines, utc.isna())
        raise BehaviorDataError(
            f"{path}: line {line}: column 8 (UTC time) {raw['utc_time'].iloc[i]!r} is not a time like "
            "'Tue Apr 03 18:00:09 +0000 2012'. Fix or delete that line."
        )
    return utc.dt.tz_localize(None) + offset  # naive local wall-clock time


def _grid_places(path: Path, raw: pd.DataFrame, lines: np.ndarray) -> pd.Series:
    """Grid-cell place labels; a latitude/longitude that is not a number in range is an error."""
    coords = {}
    for col, limit, number in (("latitude", 90, 5), ("longitude", 180, 6)):
        values = pd.to_numeric(raw[col], errors="coerce")
        bad = values.isna() | (values.abs() > limit)
        if bad.any():
            i, line = first_bad(path, lines, bad)
            raise BehaviorDataError(
                f"{path}: line {line}: column {number} ({col}) {raw[col].iloc[i]!r} is not a "
                f"{col} in [-{limit}, {limit}]. Fix or delete that line, or use place='venue'."
            )
        coords[col] = values
    return _grid_label(coords["latitude"], coords["longitude"])


def load_foursquare_tsmc(
    path: str | Path,
    *,
    min_events_per_user: int = 2,
    place: Literal["venue", "grid"] = "grid",
    encoding: str = "latin-1",
) -> tuple[pd.DataFrame, EventStats]:
    """Load Foursquare TSMC2014 check-ins (``dataset_TSMC2014_NYC.txt`` / ``dataset_TSMC2014_TKY.txt``).

    The file is tab-separated, Latin-1, without header, with 8 columns: user id, venue id,
    venue category id, venue category name, latitude, longitude, timezone offset (minutes)
    and UTC time (``Tue Apr 03 18:00:09 +0000 2012``).

    Mapping: ``behavior`` = venue category name; ``timestamp`` = UTC time + offset, as a
    naive local wall-clock time; ``place``:

    * ``"grid"`` (default) – a ~1 km cell: lat/lon rounded to 2 decimals, e.g.
      ``g40.74_-73.99``. The dataset has no semantic place labels (home, work…).
    * ``"venue"`` – the venue id, the finest location the data has. But a venue has
      exactly one category and our prompts show the next event's place, so the answer
      could be read off the place whenever that venue is in the history: a leak.

    Raises :class:`BehaviorDataError` naming the file and line for a wrong column count,
    an empty field, a non-integer timezone offset, an unparsable time, or (grid only) a bad
    latitude/longitude.
    """
    if place not in ("venue", "grid"):
        raise BehaviorDataError(f"place={place!r} is not supported; use 'venue' or 'grid'.")
    path = Path(path)
    raw, lines = read_fields(
        path,
        sep="\t",
        names=FOURSQUARE_COLUMNS,
        encoding=encoding,
        fix="Is this a TSMC2014 check-in file (dataset_TSMC2014_NYC.txt)? Fix or delete that line.",
    )
    local = _local_time(path, raw, lines)
    place_label = _grid_places(path, raw, lines) if place == "grid" else raw["venue_id"]
    events = pd.DataFrame(
        {
            "user_id": raw["user_id"],
            "timestamp": local,
            "place": place_label,
            "behavior": raw["venue_category"],
        }
    )
    df, stats = validate_events(events, source=str(path), min_events_per_user=min_events_per_user)
    stats.extra["place_mode"] = place
    return df, stats
