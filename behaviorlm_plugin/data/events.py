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

import csv
import gzip
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from behaviorlm_plugin.data.timestamps import TimestampError, far_from_span, order_key, parse_timestamps

logger = logging.getLogger(__name__)

EVENT_COLUMNS: tuple[str, ...] = ("user_id", "timestamp", "place", "behavior")
SUPPORTED_SUFFIXES = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".tsv": "tsv",
    ".tsv.gz": "tsv",
    ".jsonl": "jsonl",
    ".jsonl.gz": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
}
BAD_LABEL_CHARS = {",": "a comma", "\n": "a line break", "\r": "a line break", "\t": "a tab"}


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


def suffix_format(path: Path) -> str | None:
    name = path.name.lower()
    return next((f for s, f in sorted(SUPPORTED_SUFFIXES.items(), key=lambda x: -len(x[0])) if name.endswith(s)), None)


def _jsonl_error(path: Path, err: Exception) -> BehaviorDataError:
    """Point at the first line that is not a JSON object (pandas' own message has no line number)."""
    import json

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                if not isinstance(json.loads(line), dict):
                    return BehaviorDataError(f"{path}: line {lineno} is not a JSON object; one event per line")
            except json.JSONDecodeError as bad:
                return BehaviorDataError(f"{path}: line {lineno} is not valid JSON ({bad.msg}); fix or remove it")
    return BehaviorDataError(f"{path}: could not be read as jsonl: {err}")


def read_table(path: str | Path, fmt: str | None = None, **read_kwargs) -> pd.DataFrame:
    """Read CSV/TSV (also .gz), JSONL, JSON or Parquet with pandas; errors name the file (and line)."""
    path = Path(path)
    if not path.exists():
        raise BehaviorDataError(f"{path}: file not found.")
    fmt = fmt or suffix_format(path)
    if fmt is None:
        raise BehaviorDataError(
            f"{path}: cannot tell the format from suffix {path.suffix!r}; "
            f"use one of {sorted(SUPPORTED_SUFFIXES)} or pass --format."
        )
    # Text labels are kept as written: a behavior named "None" or "NA" is a label, not a missing value.
    text_kw = {"keep_default_na": False, "na_values": [""]}
    try:
        if fmt == "csv":
            df = pd.read_csv(path, **text_kw, **read_kwargs)
        elif fmt == "tsv":
            df = pd.read_csv(path, sep="\t", **text_kw, **read_kwargs)
        elif fmt == "jsonl":
            df = pd.read_json(path, lines=True, dtype=False, **read_kwargs)
        elif fmt == "json":
            df = pd.read_json(path, dtype=False, **read_kwargs)
        elif fmt == "parquet":
            df = pd.read_parquet(path, **read_kwargs)
        else:
            raise BehaviorDataError(f"{path}: unknown format {fmt!r}; use csv, tsv, jsonl, json or parquet.")
    except BehaviorDataError:
        raise
    except pd.errors.EmptyDataError as err:
        raise BehaviorDataError(f"{path}: the file is empty; it needs a header and one event per row") from err
    except Exception as err:  # pandas raises many kinds for malformed input; the user gets one line
        if fmt == "jsonl":
            raise _jsonl_error(path, err) from err
        hint = " (a JSON file must be a list of event objects)" if fmt == "json" else ""
        raise BehaviorDataError(f"{path}: could not be read as {fmt}{hint}: {err}") from err
    if df.empty:
        raise BehaviorDataError(f"{path}: has no events (a header or an empty list, but no rows); add data")
    return df


def load_events(
    path: str | Path,
    *,
    column_map: dict[str, str] | None = None,
    fmt: str | None = None,
    timestamp_format: str | None = None,
    timestamp_unit: str = "auto",
    timezone: str | None = None,
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
        timestamp_unit=timestamp_unit,
        timezone=timezone,
        min_events_per_user=min_events_per_user,
        drop_duplicates=drop_duplicates,
    )


def _timestamps(df: pd.DataFrame, source: str, fmt, unit, timezone, stats: EventStats) -> tuple[pd.Series, pd.Series]:
    """(local wall-clock times, the key events are ordered by)."""
    try:
        ts = parse_timestamps(df["timestamp"], fmt=fmt, unit=unit, timezone=timezone)
    except TimestampError as err:
        at = f"{where(source, err.row)} " if err.row is not None else ""
        raise BehaviorDataError(f"{source}: {at}column 'timestamp': {err}") from err
    far = far_from_span(ts)
    if far.any():
        row = int(far.nonzero()[0][0])
        stats.extra["timestamps_far_from_span"] = int(far.sum())
        logger.warning(
            "%s: %d event(s) dated far outside the log's span, first at %s (%s); kept, but check for typos",
            source,
            int(far.sum()),
            where(source, row),
            ts.iloc[row],
        )
    order = ts if timezone else order_key(df["timestamp"], ts, fmt)
    return ts, order


def _clean_labels(df: pd.DataFrame, col: str, source: str) -> None:
    """Strip each distinct value once (labels repeat millions of times); refuse empty ones."""
    nested = df[col].map(lambda v: isinstance(v, list | dict | tuple | set)).to_numpy()
    if nested.any():
        row = int(nested.nonzero()[0][0])
        raise BehaviorDataError(
            f"{source}: {where(source, row)} column {col!r} holds a {type(df[col].iloc[row]).__name__}, "
            "not a single value; give one label per event"
        )
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
    if col in ("behavior", "place"):  # both are written inside comma-separated prompt text
        for code, label in enumerate(cleaned):
            bad = next((what for ch, what in BAD_LABEL_CHARS.items() if ch in label), None)
            if bad and (codes == code).any():
                row = int((codes == code).nonzero()[0][0])
                raise BehaviorDataError(
                    f"{source}: {where(source, row)} column {col!r}: {label!r} contains {bad}; the prompt writes "
                    f"each {col} inside comma-separated text on one line, so rename it (e.g. replace the "
                    "character with a space or '/')"
                )
    df[col] = np.asarray(cleaned, dtype=object)[codes]


def validate_events(
    df: pd.DataFrame,
    *,
    source: str,
    timestamp_format: str | None = None,
    timestamp_unit: str = "auto",
    timezone: str | None = None,
    min_events_per_user: int = 2,
    drop_duplicates: bool = True,
) -> tuple[pd.DataFrame, EventStats]:
    """Check and normalise events; returns the clean frame and what was dropped.

    Raises :class:`BehaviorDataError` for missing columns, unparsable timestamps, empty labels,
    and behavior names that would break a prompt (errors in the data the user must fix).
    Exact duplicate events are dropped (or refused with
    ``drop_duplicates=False``), users with fewer than ``min_events_per_user`` events are skipped
    and counted, and events dated far outside the log's span are counted and warned about.
    """
    stats = EventStats(source=source, rows_in=len(df))
    if df.empty:
        raise BehaviorDataError(f"{source}: has no events; add data")
    missing = [c for c in EVENT_COLUMNS if c not in df.columns]
    if missing:
        raise BehaviorDataError(
            f"{source}: missing column(s) {missing}; found {list(df.columns)}. "
            "Rename them in the file or pass a column map, e.g. --column-map behavior=intent."
        )
    df = df.loc[:, list(EVENT_COLUMNS)].reset_index(drop=True)
    df["timestamp"], order = _timestamps(df, source, timestamp_format, timestamp_unit, timezone, stats)
    for col in ("user_id", "place", "behavior"):
        _clean_labels(df, col, source)

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
    df = df.assign(_order=order.loc[df.index]).sort_values(["user_id", "_order"], kind="stable")
    df = df.drop(columns="_order").reset_index(drop=True)
    stats.rows_out = len(df)
    return df, stats


def _csv_line(path: Path, row: int, sep: str) -> int | None:
    """The physical line a 0-based CSV data row starts on (quoted fields may span lines; blank lines skipped)."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh, delimiter=sep)
            end = 0
            index = -1  # the header
            for record in reader:
                start, end = end + 1, reader.line_num
                if not record:
                    continue
                if index == row:
                    return start
                index += 1
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return None


def where(source: str, row: int, *, header: bool = True) -> str:
    """Human position of 0-based data row ``row``: adds the file line for text tables."""
    lower = source.lower()
    if header and lower.endswith((".csv", ".tsv", ".csv.gz", ".tsv.gz")) and Path(source).is_file():
        line = _csv_line(Path(source), row, "\t" if ".tsv" in lower else ",")
        if line is not None:
            return f"row {row} (line {line})"
    if lower.endswith((".csv", ".tsv", ".txt", ".jsonl")):
        line = row + (2 if header and not lower.endswith((".jsonl", ".txt")) else 1)
        return f"row {row} (line {line})"
    return f"row {row}"
