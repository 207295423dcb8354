"""Loaders for public behavior datasets, producing the :mod:`behaviorlm_plugin.events` schema.

* :func:`load_foursquare_tsmc` – Foursquare TSMC2014 check-ins
  (``dataset_TSMC2014_NYC.txt`` / ``dataset_TSMC2014_TKY.txt``).
* :func:`load_app_usage` / :func:`load_app_usage_dir` – Tsinghua App Usage dataset
  (``App_usage_trace.txt`` + ``App2Category.txt`` + ``Categorys.txt``).

Every loader ends in :func:`~behaviorlm_plugin.events.validate_events`, so it returns
``(events_df, EventStats)`` with exactly the columns ``user_id, timestamp, place, behavior``.
Problems in the files raise :class:`~behaviorlm_plugin.events.BehaviorDataError` naming the
file, the 1-based line (or the offending id) and what to do about it.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from itertools import islice
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from .events import BehaviorDataError, EventStats, validate_events

__all__ = ["load_app_usage", "load_app_usage_dir", "load_foursquare_tsmc"]

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
APP_TRACE_COLUMNS: tuple[str, ...] = ("user_id", "timestamp", "location", "app_id", "traffic")
APP_TIME_FORMAT = "%Y%m%d%H%M%S"  # e.g. "20160421100000"

_INT_RE = r"[+-]?\d+"
_WHITESPACE = r"\s+"


# --------------------------------------------------------------------------- helpers


def _line_fields(path: Path, line: int, sep: str, encoding: str) -> int:
    """Number of fields on 1-based ``line`` of ``path`` (error path only, reads up to that line)."""
    with path.open(encoding=encoding, newline="") as fh:
        text = next(islice(fh, line - 1, None), "").rstrip("\r\n")
    return len(text.split()) if sep == _WHITESPACE else len(text.split(sep))


def _read_fields(
    path: Path, *, sep: str, names: Sequence[str], encoding: str, fix: str
) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a header-less delimited text file into string columns ``names``.

    Returns the frame (blank lines dropped) and the 1-based file line of each row.
    Lines with the wrong number of fields raise :class:`BehaviorDataError`.
    """
    if not path.is_file():
        raise BehaviorDataError(f"{path}: file not found.")
    n = len(names)
    sep_word = "whitespace" if sep == _WHITESPACE else "tab" if sep == "\t" else repr(sep)

    def wrong_count(line: int, saw: int) -> BehaviorDataError:
        return BehaviorDataError(
            f"{path}: line {line} has {saw} {sep_word}-separated field(s), expected {n} ({', '.join(names)}). {fix}"
        )

    try:
        raw = pd.read_csv(
            path,
            sep=sep,
            header=None,
            dtype=str,
            encoding=encoding,
            quoting=csv.QUOTE_NONE,  # quotes are ordinary characters in these dumps
            na_filter=False,  # keep "NA"/"null" as text; missing fields become ""
            skip_blank_lines=False,  # keeps row i == file line i + 1
        )
    except pd.errors.EmptyDataError as err:
        raise BehaviorDataError(f"{path}: the file is empty; expected {n} fields per line.") from err
    except pd.errors.ParserError as err:
        # The C parser takes the width of line 1 and complains about the first line that is wider.
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(err))
        if m is None:
            raise BehaviorDataError(f"{path}: could not be parsed: {err}") from err
        first, line, saw = map(int, m.groups())
        if first != n:
            raise wrong_count(1, first) from err
        raise wrong_count(line, saw) from err

    lines = np.arange(1, len(raw) + 1)
    if sep != _WHITESPACE:  # whitespace-split fields cannot carry blanks
        raw = raw.apply(lambda col: col.str.strip())
    blank = (raw == "").all(axis=1).to_numpy()
    raw, lines = raw.loc[~blank].reset_index(drop=True), lines[~blank]
    if raw.empty:
        raise BehaviorDataError(f"{path}: the file has no data lines; expected {n} fields per line.")

    if raw.shape[1] > n:  # some line is too wide (the first line, or one the parser padded to)
        extra = (raw.iloc[:, n:] != "").any(axis=1).to_numpy()
        i = int(extra.nonzero()[0][0])
        raise wrong_count(int(lines[i]), _line_fields(path, int(lines[i]), sep, encoding))
    if raw.shape[1] < n:  # every line is too narrow
        raise wrong_count(int(lines[0]), raw.shape[1])
    raw.columns = list(names)

    # Short lines are padded with "": report them as a wrong field count, genuine empties as such.
    empty = (raw == "").to_numpy()
    if empty.any():
        i, j = (int(v[0]) for v in empty.nonzero())
        line = int(lines[i])
        saw = _line_fields(path, line, sep, encoding)
        if saw != n:
            raise wrong_count(line, saw)
        raise BehaviorDataError(f"{path}: line {line}: column {j + 1} ({names[j]}) is empty. {fix}")
    return raw, lines


def _first_bad(path: Path, lines: np.ndarray, bad: pd.Series | np.ndarray) -> tuple[int, int]:
    """(row index, 1-based file line) of the first True in ``bad``."""
    i = int(np.asarray(bad).nonzero()[0][0])
    return i, int(lines[i])


def _grid_label(lat: pd.Series, lon: pd.Series) -> pd.Series:
    """``g<lat>_<lon>`` with both rounded to 2 decimals (0.01° ≈ 1.1 km north-south)."""

    def fmt(values: pd.Series) -> pd.Series:
        rounded = values.round(2) + 0.0  # "+ 0.0" turns -0.0 into 0.0
        uniq = pd.unique(rounded)  # format each distinct value once
        return rounded.map(dict(zip(uniq, (f"{v:.2f}" for v in uniq), strict=True)))

    return "g" + fmt(lat) + "_" + fmt(lon)


# --------------------------------------------------------------------------- Foursquare


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
    raw, lines = _read_fields(
        path,
        sep="\t",
        names=FOURSQUARE_COLUMNS,
        encoding=encoding,
        fix="Is this a TSMC2014 check-in file (dataset_TSMC2014_NYC.txt)? Fix or delete that line.",
    )

    offset_ok = raw["timezone_offset"].str.fullmatch(_INT_RE)
    if not offset_ok.all():
        i, line = _first_bad(path, lines, ~offset_ok)
        raise BehaviorDataError(
            f"{path}: line {line}: column 7 (timezone offset) is {raw['timezone_offset'].iloc[i]!r}, "
            "not a whole number of minutes (e.g. -240). Fix or delete that line."
        )
    offset = pd.to_timedelta(raw["timezone_offset"].astype("int64"), unit="min")

    utc = pd.to_datetime(raw["utc_time"], format=FOURSQUARE_TIME_FORMAT, utc=True, errors="coerce")
    if utc.isna().any():
        i, line = _first_bad(path, lines, utc.isna())
        raise BehaviorDataError(
            f"{path}: line {line}: column 8 (UTC time) {raw['utc_time'].iloc[i]!r} is not a time like "
            "'Tue Apr 03 18:00:09 +0000 2012'. Fix or delete that line."
        )
    local = utc.dt.tz_localize(None) + offset  # naive local wall-clock time

    if place == "grid":
        coords = {}
        for col, limit, number in (("latitude", 90, 5), ("longitude", 180, 6)):
            values = pd.to_numeric(raw[col], errors="coerce")
            bad = values.isna() | (values.abs() > limit)
            if bad.any():
                i, line = _first_bad(path, lines, bad)
                raise BehaviorDataError(
                    f"{path}: line {line}: column {number} ({col}) {raw[col].iloc[i]!r} is not a "
                    f"{col} in [-{limit}, {limit}]. Fix or delete that line, or use place='venue'."
                )
            coords[col] = values
        place_label = _grid_label(coords["latitude"], coords["longitude"])
    else:
        place_label = raw["venue_id"]

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


# --------------------------------------------------------------------------- Tsinghua App Usage


def _read_app2category(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """``App2Category.txt``: ``app_id  category_id`` (a header line is skipped)."""
    fix = "Each line must be '<app id><TAB><category id>'; fix or delete that line."
    raw, lines = _read_fields(path, sep=_WHITESPACE, names=("app_id", "category_id"), encoding="latin-1", fix=fix)
    is_int = raw["category_id"].str.fullmatch(_INT_RE)
    if not is_int.iloc[0]:  # header line such as "app_id<TAB>category_id"
        raw, lines = raw.iloc[1:].reset_index(drop=True), lines[1:]
        is_int = is_int.iloc[1:].reset_index(drop=True)
    if raw.empty:
        raise BehaviorDataError(f"{path}: no app-to-category lines found. {fix}")
    if not is_int.all():
        i, line = _first_bad(path, lines, ~is_int)
        raise BehaviorDataError(
            f"{path}: line {line}: category id {raw['category_id'].iloc[i]!r} is not an integer. {fix}"
        )
    raw["category_id"] = raw["category_id"].astype("int64")
    return raw, lines


def _read_categories(path: Path) -> dict[int, str]:
    """``Categorys.txt``: category id and name, in either column order, optional header line."""
    if not path.is_file():
        raise BehaviorDataError(f"{path}: file not found.")
    data = path.read_bytes()
    for enc in ("utf-8-sig", "gb18030", "latin-1"):  # the file is tiny; names may be non-ASCII
        try:
            text = data.decode(enc)
            break
        except UnicodeDecodeError:
            continue

    def is_int(s: str) -> bool:
        return re.fullmatch(_INT_RE, s) is not None

    rows: list[tuple[int, list[str]]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.strip()
        if not line:
            continue
        if "\t" in line:
            parts = [p.strip() for p in line.split("\t") if p.strip()]
        else:  # space-separated: the id is the first or the last word, the name the rest
            parts = line.split(None, 1) if is_int(line.split(None, 1)[0]) else line.rsplit(None, 1)
        if len(parts) != 2:
            raise BehaviorDataError(
                f"{path}: line {number} has {len(parts)} field(s), expected 2 (category id and name). "
                "Each line must be '<category id><TAB><category name>'."
            )
        rows.append((number, parts))
    if rows and not any(is_int(p) for p in rows[0][1]):
        rows = rows[1:]  # header line such as "category_id<TAB>name"
    if not rows:
        raise BehaviorDataError(f"{path}: no categories found; expected '<category id><TAB><name>' lines.")

    # The id column is the one whose values are all integers (prefer the first one).
    id_col = next((c for c in (0, 1) if all(is_int(parts[c]) for _, parts in rows)), None)
    if id_col is None:
        number = next(n for n, parts in rows if not is_int(parts[0]))
        raise BehaviorDataError(
            f"{path}: cannot tell which column holds the category id: neither column is an integer on "
            f"every line (first offender: line {number}). Each line must be '<category id><TAB><name>'."
        )
    names: dict[int, str] = {}
    for number, parts in rows:
        cid, name = int(parts[id_col]), parts[1 - id_col]
        if names.setdefault(cid, name) != name:
            raise BehaviorDataError(
                f"{path}: line {number}: category id {cid} is named both {names[cid]!r} and {name!r}. "
                "Keep one line per category id."
            )
    return names


def _merge_repeats(df: pd.DataFrame, window: pd.Timedelta) -> pd.DataFrame:
    """Collapse repeated records of the same user+app that follow a kept record within ``window``.

    The first record of a user+app is kept; a later record is dropped if it is at most
    ``window`` after the last *kept* record of that user+app (so a steady stream of records
    yields one event per window, not one event for the whole stream). The kept record keeps
    its own time and location. Vectorised: no Python loop over records.
    """
    df = df.sort_values(["user_id", "app_id", "timestamp"], kind="stable").reset_index(drop=True)
    n = len(df)
    if n == 0:
        return df
    t = df["timestamp"].to_numpy("datetime64[ns]").astype(np.int64)
    w = window.value  # nanoseconds

    # Bursts (groupby/diff): a new user+app or a gap > window starts one; its first record is kept.
    gap = df.groupby(["user_id", "app_id"], sort=False)["timestamp"].diff()
    starts = (gap.isna() | (gap > window)).to_numpy()
    burst = np.cumsum(starts) - 1

    # Inside a burst the kept records form a chain: next[i] = first record later than t[i] + window.
    # (burst, time rank) packs into one sorted int64 key, so one searchsorted finds next[] for all rows.
    uniq, rank = np.unique(t, return_inverse=True)
    width = len(uniq) + 1
    key = burst * width + rank
    target = burst * width + np.searchsorted(uniq, t + w, side="right")
    nxt = np.searchsorted(key, target, side="left")
    outside = nxt >= n
    outside[~outside] = burst[nxt[~outside]] != burst[~outside]
    nxt[outside] = n  # n is a sentinel "no next kept record"

    # Mark every record on each chain by pointer doubling: O(log chain length) vectorised steps.
    jump = np.append(nxt, n)
    kept = np.append(starts, False)
    while True:
        kept[jump[kept]] = True  # kept now holds chain positions [0, 2 * step)
        if (jump[:n] == n).all():
            break
        jump = jump[jump]  # step -> 2 * step
    return df.loc[kept[:n]].reset_index(drop=True)


def load_app_usage(
    trace_path: str | Path,
    app2category_path: str | Path,
    categories_path: str | Path,
    *,
    min_events_per_user: int = 2,
    merge_window: str | pd.Timedelta | None = "1min",
) -> tuple[pd.DataFrame, EventStats]:
    """Load the Tsinghua App Usage dataset.

    * ``App_usage_trace.txt``: whitespace-separated, no header:
      ``user_id timestamp(%Y%m%d%H%M%S) location(base station id) app_id traffic``.
    * ``App2Category.txt``: ``app_id<TAB>category_id`` (a header line is tolerated).
    * ``Categorys.txt``: ``category_id<TAB>category_name`` in either column order (the integer
      column is the id; a header line is tolerated).

    Mapping: ``behavior`` = category name of the app, ``place`` = ``"bs<base station id>"``,
    ``timestamp`` = the trace time (already local). Records of apps missing from App2Category
    are dropped and counted. Repeated records of the same user+app at most ``merge_window``
    after the last kept record of that user+app collapse into it (``None`` disables merging).

    ``stats.extra`` gets ``records_in`` (trace lines), ``apps_unmapped_records``,
    ``records_merged`` and ``apps_with_several_categories`` (apps given two or more categories in
    App2Category; their first category is used).

    Raises :class:`BehaviorDataError` naming the file and line for a wrong field count or an
    unparsable timestamp, and naming the file and id for a category id that Categorys lacks.
    """
    trace_path, app2category_path, categories_path = (
        Path(trace_path),
        Path(app2category_path),
        Path(categories_path),
    )
    if merge_window is None:
        window = None
    else:
        try:
            window = pd.Timedelta(merge_window)
        except ValueError as err:
            raise BehaviorDataError(
                f"merge_window={merge_window!r} is not a duration; use e.g. '1min', '30s' or None."
            ) from err
        if window < pd.Timedelta(0):
            raise BehaviorDataError(f"merge_window={merge_window!r} is negative; use e.g. '1min' or None.")

    # Category names and the app -> category map; every category id used must be named.
    names = _read_categories(categories_path)
    app2cat, app2cat_lines = _read_app2category(app2category_path)
    unknown = ~app2cat["category_id"].isin(list(names))
    if unknown.any():
        i, line = _first_bad(app2category_path, app2cat_lines, unknown)
        cid = int(app2cat["category_id"].iloc[i])
        raise BehaviorDataError(
            f"{categories_path}: category id {cid} (used by {app2category_path} line {line}, app "
            f"{app2cat['app_id'].iloc[i]}) is not defined; known ids: {sorted(names)}. "
            "Add it to the categories file or fix the app's line."
        )
    several = app2cat["app_id"].duplicated(keep="first")  # the first listed category wins
    app_to_name = app2cat.loc[~several].set_index("app_id")["category_id"].map(names)

    trace, lines = _read_fields(
        trace_path,
        sep=_WHITESPACE,
        names=APP_TRACE_COLUMNS,
        encoding="latin-1",
        fix="Each line must be 'user_id YYYYmmddHHMMSS base_station_id app_id traffic'; fix or delete it.",
    )
    records_in = len(trace)
    ts_text = trace["timestamp"]
    ts = pd.to_datetime(ts_text, format=APP_TIME_FORMAT, errors="coerce")
    bad = ts.isna() | (ts_text.str.len() != 14)  # strptime alone accepts 1-digit fields
    if bad.any():
        i, line = _first_bad(trace_path, lines, bad)
        raise BehaviorDataError(
            f"{trace_path}: line {line}: column 2 (timestamp) {ts_text.iloc[i]!r} is not a time like "
            "'20160421100000' (YYYYmmddHHMMSS). Fix or delete that line."
        )

    records = pd.DataFrame(
        {
            "user_id": trace["user_id"],
            "timestamp": ts,
            "place": "bs" + trace["location"],
            "app_id": trace["app_id"],
            "behavior": trace["app_id"].map(app_to_name),
        }
    )
    unmapped = records["behavior"].isna()
    records = records.loc[~unmapped]
    before_merge = len(records)
    if window is not None:
        records = _merge_repeats(records, window)

    events = records.drop(columns="app_id").sort_values(["user_id", "timestamp"], kind="stable")
    df, stats = validate_events(events, source=str(trace_path), min_events_per_user=min_events_per_user)
    stats.extra.update(
        records_in=records_in,
        apps_unmapped_records=int(unmapped.sum()),
        records_merged=before_merge - len(records),
        apps_with_several_categories=int((app2cat.groupby("app_id")["category_id"].nunique() > 1).sum()),
    )
    return df, stats


# File names in the official archives; the case varies between copies.
APP_USAGE_FILES: dict[str, tuple[str, ...]] = {
    "trace_path": ("app_usage_trace.txt",),
    "app2category_path": ("app2category.txt",),
    "categories_path": ("categorys.txt", "categories.txt"),
}


def load_app_usage_dir(directory: str | Path, **kw) -> tuple[pd.DataFrame, EventStats]:
    """:func:`load_app_usage` on a folder holding the three files, matched case-insensitively.

    ``App_usage_trace.txt``, ``App2Category.txt`` and ``Categorys.txt`` (or ``Categories.txt``)
    may appear in any letter case; ``kw`` goes to :func:`load_app_usage`. A missing or
    ambiguous file raises :class:`BehaviorDataError` listing what the folder holds.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise BehaviorDataError(
            f"{directory}: not a directory; for --format app_usage pass the folder holding "
            "App_usage_trace.txt, App2Category.txt and Categorys.txt."
        )
    files = sorted(p for p in directory.iterdir() if p.is_file())
    found: dict[str, Path] = {}
    problems: list[str] = []
    for arg, wanted in APP_USAGE_FILES.items():
        matches = [p for p in files if p.name.lower() in wanted]
        if len(matches) == 1:
            found[arg] = matches[0]
        elif matches:
            problems.append(f"several files match {wanted[0]}: {[p.name for p in matches]} (keep one)")
        else:
            stem = Path(wanted[0]).stem
            archived = [p.name for p in files if p.stem.lower() == stem and p.suffix.lower() != ".txt"]
            hint = f" (extract {archived[0]})" if archived else ""
            problems.append(f"no {wanted[0]} (any letter case){hint}")
    if problems:
        raise BehaviorDataError(
            f"{directory}: " + "; ".join(problems) + f". Files found: {[p.name for p in files]}. "
            "The folder needs App_usage_trace.txt, App2Category.txt and Categorys.txt."
        )
    return load_app_usage(**found, **kw)
