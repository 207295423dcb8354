"""Behavior events: the one schema every loader produces, plus validation.

An event is ``(user_id, timestamp, place, behavior)``.  ``timestamp`` is the user's
*local* wall-clock time (day of week and hour are read from it), ``place`` is a
semantic location label ("home", "workplace", a base-station id…) and ``behavior``
is the label the model must predict.

Loaders return a pandas DataFrame with exactly :data:`EVENT_COLUMNS` (in that
order), sorted by user then time.  :func:`validate_events` is the single gate all
of them pass through, so every source gets the same checks and the same errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

EVENT_COLUMNS: tuple[str, ...] = ("user_id", "timestamp", "place", "behavior")
SUPPORTED_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "json", ".parquet": "parquet"}


class BehaviorDataError(ValueError):
    """Bad behavior input. The message names the file, the row/column, and the fix."""


@dataclass
class EventStats:
    """What validation did to the raw events (goes into ``stats.json``)."""

    source: str
    rows_in: int = 0
    duplicates_dropped: int = 0
    users_in: int = 0
    users_skipped_too_few_events: int = 0
    events_skipped_too_few_events: int = 0
    rows_out: int = 0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "extra"} | self.extra


def read_table(path: str | Path, fmt: str | None = None, **read_kwargs) -> pd.DataFrame:
    """Read CSV/TSV/JSONL/JSON/Parquet with pandas; errors name the file."""
    path = Path(path)
    if not path.exists():
        raise BehaviorDataError(f"{path}: file not found.")
    fmt = fmt or SUPPORTED_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise BehaviorDataError(
            f"{path}: cannot tell the format from suffix {path.suffix!r}; "
            f"use one of {sorted(SUPPORTED_SUFFIXES)} or pass --format."
        )
    try:
        if fmt == "csv":
            return pd.read_csv(path, **read_kwargs)
        if fmt == "tsv":
            return pd.read_csv(path, sep="\t", **read_kwargs)
        if fmt == "jsonl":
            return pd.read_json(path, lines=True, **read_kwargs)
        if fmt == "json":
            return pd.read_json(path, **read_kwargs)
        if fmt == "parquet":
            return pd.read_parquet(path, **read_kwargs)
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise BehaviorDataError(f"{path}: could not be read as {fmt}: {err}") from err
    raise BehaviorDataError(f"{path}: unknown format {fmt!r}; use csv, tsv, jsonl, json or parquet.")


def load_events(
    path: str | Path,
    *,
    column_map: dict[str, str] | None = None,
    fmt: str | None = None,
    timestamp_format: str | None = None,
    min_events_per_user: int = 2,
    drop_duplicates: bool = True,
) -> tuple[pd.DataFrame, EventStats]:
    """Load a generic events file.

    ``column_map`` maps *our* names to the file's, e.g. ``{"behavior": "intent"}``.
    """
    raw = read_table(path, fmt)
    if column_map:
        unknown = set(column_map) - set(EVENT_COLUMNS)
        if unknown:
            raise BehaviorDataError(
                f"{path}: column map has unknown target(s) {sorted(unknown)}; keys must be among {list(EVENT_COLUMNS)}."
            )
        raw = raw.rename(columns={src: dst for dst, src in column_map.items()})
    return validate_events(
        raw,
        source=str(path),
        timestamp_format=timestamp_format,
        min_events_per_user=min_events_per_user,
        drop_duplicates=drop_duplicates,
    )


def validate_events(
    df: pd.DataFrame,
    *,
    source: str,
    timestamp_format: str | None = None,
    min_events_per_user: int = 2,
    drop_duplicates: bool = True,
) -> tuple[pd.DataFrame, EventStats]:
    """Check and normalise events; returns the clean frame and what was dropped.

    Raises :class:`BehaviorDataError` for missing columns, unparsable timestamps and
    empty labels (these are errors in the data the user must fix).  Exact duplicate
    events are dropped (or refused with ``drop_duplicates=False``) and users with
    fewer than ``min_events_per_user`` events are skipped and counted.
    """
    stats = EventStats(source=source, rows_in=len(df))
    missing = [c for c in EVENT_COLUMNS if c not in df.columns]
    if missing:
        raise BehaviorDataError(
            f"{source}: missing column(s) {missing}; found {list(df.columns)}. "
            "Rename them in the file or pass a column map, e.g. --column-map behavior=intent."
        )
    df = df.loc[:, list(EVENT_COLUMNS)].copy()

    ts = df["timestamp"]
    if not pd.api.types.is_datetime64_any_dtype(ts):
        parsed = pd.to_datetime(ts, format=timestamp_format, errors="coerce")
        bad = parsed.isna() & ts.notna()
        if bad.any() or ts.isna().any():
            row = int((bad | ts.isna()).to_numpy().nonzero()[0][0])
            raise BehaviorDataError(
                f"{source}: {where(source, row)} column 'timestamp': cannot parse "
                f"{ts.iloc[row]!r} as a time. Use ISO 8601 (2024-03-01 08:15:00) or pass --timestamp-format."
            )
        ts = parsed
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_localize(None)  # local wall-clock time is what the prompts show
    df["timestamp"] = ts.astype("datetime64[ns]")

    for col in ("user_id", "place", "behavior"):
        # Strip each distinct value once (labels repeat millions of times).
        cat = df[col].astype("category") if not isinstance(df[col].dtype, pd.CategoricalDtype) else df[col]
        cleaned = pd.Index(cat.cat.categories.astype(str)).str.strip()
        codes = cat.cat.codes.to_numpy()
        blank = np.append(np.asarray(cleaned == "", dtype=bool), True)  # code -1 (missing) -> last slot
        empty = blank[codes]
        if empty.any():
            row = int(empty.nonzero()[0][0])
            raise BehaviorDataError(
                f"{source}: {where(source, row)} column {col!r} is empty "
                f"({int(empty.sum())} empty value(s) in total). Fill or drop those rows."
            )
        df[col] = np.asarray(cleaned, dtype=object)[codes]

    dup = df.duplicated(keep="first")
    if dup.any():
        if not drop_duplicates:
            row = int(dup.to_numpy().nonzero()[0][0])
            raise BehaviorDataError(
                f"{source}: {where(source, row)} duplicates an earlier event "
                f"({int(dup.sum())} duplicate(s)). Remove them or allow dropping duplicates."
            )
        stats.duplicates_dropped = int(dup.sum())
        df = df.loc[~dup]

    counts = df.groupby("user_id", sort=False)["user_id"].transform("size")
    stats.users_in = int(df["user_id"].nunique())
    few = counts < min_events_per_user
    stats.users_skipped_too_few_events = int(df.loc[few, "user_id"].nunique())
    stats.events_skipped_too_few_events = int(few.sum())
    df = df.loc[~few]
    if df.empty:
        raise BehaviorDataError(
            f"{source}: no user has at least {min_events_per_user} events after validation; "
            "check the user_id column or lower the history length."
        )
    df = df.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
    stats.rows_out = len(df)
    return df, stats


def where(source: str, row: int, *, header: bool = True) -> str:
    """Human position of 0-based data row ``row``: adds the file line for text tables."""
    if source.lower().endswith((".csv", ".tsv", ".txt", ".jsonl")):
        line = row + (2 if header and not source.lower().endswith((".jsonl", ".txt")) else 1)
        return f"row {row} (line {line})"
    return f"row {row}"
