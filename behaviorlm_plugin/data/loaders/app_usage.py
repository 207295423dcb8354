"""Tsinghua App Usage dataset (``App_usage_trace.txt`` + ``App2Category.txt`` + ``Categorys.txt``)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from behaviorlm_plugin.data.events import BehaviorDataError, EventStats, validate_events
from behaviorlm_plugin.data.loaders.text_fields import INT_RE, WHITESPACE, first_bad, read_fields

__all__ = ["APP_TIME_FORMAT", "APP_TRACE_COLUMNS", "APP_USAGE_FILES", "load_app_usage", "load_app_usage_dir"]

APP_TRACE_COLUMNS: tuple[str, ...] = ("user_id", "timestamp", "location", "app_id", "traffic")
APP_TIME_FORMAT = "%Y%m%d%H%M%S"  # e.g. "20160421100000"

# File names in the official archives; the case varies between copies.
APP_USAGE_FILES: dict[str, tuple[str, ...]] = {
    "trace_path": ("app_usage_trace.txt",),
    "app2category_path": ("app2category.txt",),
    "categories_path": ("categorys.txt", "categories.txt"),
}


# --------------------------------------------------------------------------- category files


def _read_app2category(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """``App2Category.txt``: ``app_id  category_id`` (a header line is skipped)."""
    fix = "Each line must be '<app id><TAB><category id>'; fix or delete that line."
    raw, lines = read_fields(path, sep=WHITESPACE, names=("app_id", "category_id"), encoding="latin-1", fix=fix)
    is_int = raw["category_id"].str.fullmatch(INT_RE)
    if not is_int.iloc[0]:  # header line such as "app_id<TAB>category_id"
        raw, lines = raw.iloc[1:].reset_index(drop=True), lines[1:]
        is_int = is_int.iloc[1:].reset_index(drop=True)
    if raw.empty:
        raise BehaviorDataError(f"{path}: no app-to-category lines found. {fix}")
    if not is_int.all():
        i, line = first_bad(path, lines, ~is_int)
        raise BehaviorDataError(
            f"{path}: line {line}: category id {raw['category_id'].iloc[i]!r} is not an integer. {fix}"
        )
    raw["category_id"] = raw["category_id"].astype("int64")
    return raw, lines


def _is_int(s: str) -> bool:
    return re.fullmatch(INT_RE, s) is not None


def _category_rows(path: Path) -> list[tuple[int, list[str]]]:
    """``(1-based line, [two fields])`` of every non-blank line of ``Categorys.txt``, header dropped."""
    if not path.is_file():
        raise BehaviorDataError(f"{path}: file not found.")
    data = path.read_bytes()
    for enc in ("utf-8-sig", "gb18030", "latin-1"):  # the file is tiny; names may be non-ASCII
        try:
            text = data.decode(enc)
            break
        except UnicodeDecodeError:
            continue

    rows: list[tuple[int, list[str]]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.strip()
        if not line:
            continue
        if "\t" in line:
            parts = [p.strip() for p in line.split("\t") if p.strip()]
        else:  # space-separated: the id is the first or the last word, the name the rest
            parts = line.split(None, 1) if _is_int(line.split(None, 1)[0]) else line.rsplit(None, 1)
        if len(parts) != 2:
            raise BehaviorDataError(
                f"{path}: line {number} has {len(parts)} field(s), expected 2 (category id and name). "
                "Each line must be '<category id><TAB><category name>'."
            )
        rows.append((number, parts))
    if rows and not any(_is_int(p) for p in rows[0][1]):
        rows = rows[1:]  # header line such as "category_id<TAB>name"
    return rows


def _read_categories(path: Path) -> dict[int, str]:
    """``Categorys.txt``: category id and name, in either column order, optional header line."""
    rows = _category_rows(path)
    if not rows:
        raise BehaviorDataError(f"{path}: no categories found; expected '<category id><TAB><name>' lines.")

    # The id column is the one whose values are all integers (prefer the first one).
    id_col = next((c for c in (0, 1) if all(_is_int(parts[c]) for _, parts in rows)), None)
    if id_col is None:
        number = next(n for n, parts in rows if not _is_int(parts[0]))
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


def _app_categories(app2category_path: Path, categories_path: Path) -> tuple[pd.Series, int]:
    """App id -> category name (first listed category wins), and how many apps have several."""
    # Category names and the app -> category map; every category id used must be named.
    names = _read_categories(categories_path)
    app2cat, app2cat_lines = _read_app2category(app2category_path)
    unknown = ~app2cat["category_id"].isin(list(names))
    if unknown.any():
        i, line = first_bad(app2category_path, app2cat_lines, unknown)
        cid = int(app2cat["category_id"].iloc[i])
        raise BehaviorDataError(
            f"{categories_path}: category id {cid} (used by {app2category_path} line {line}, app "
            f"{app2cat['app_id'].iloc[i]}) is not defined; known ids: {sorted(names)}. "
            "Add it to the categories file or fix the app's line."
        )
    several = app2cat["app_id"].duplicated(keep="first")  # the first listed category wins
    app_to_name = app2cat.loc[~several].set_index("app_id")["category_id"].map(names)
    n_several = int((app2cat.groupby("app_id")["category_id"].nunique() > 1).sum())
    return app_to_name, n_several


# --------------------------------------------------------------------------- trace


def _read_trace(path: Path) -> tuple[pd.DataFrame, pd.Series]:
    """The trace's string columns and its parsed timestamps (a bad timestamp is an error)."""
    trace, lines = read_fields(
        path,
        sep=WHITESPACE,
        names=APP_TRACE_COLUMNS,
        encoding="latin-1",
        fix="Each line must be 'user_id YYYYmmddHHMMSS base_station_id app_id traffic'; fix or delete it.",
    )
    ts_text = trace["timestamp"]
    ts = pd.to_datetime(ts_text, format=APP_TIME_FORMAT, errors="coerce")
    bad = ts.isna() | (ts_text.str.len() != 14)  # strptime alone accepts 1-digit fields
    if bad.any():
        i, line = first_bad(path, lines, bad)
        raise BehaviorDataError(
            f"{path}: line {line}: column 2 (timestamp) {ts_text.iloc[i]!r} is not a time like "
            "'20160421100000' (YYYYmmddHHMMSS). Fix or delete that line."
        )
    return trace, ts


def _merge_window(merge_window: str | pd.Timedelta | None) -> pd.Timedelta | None:
    if merge_window is None:
        return None
    try:
        window = pd.Timedelta(merge_window)
    except ValueError as err:
        raise BehaviorDataError(
            f"merge_window={merge_window!r} is not a duration; use e.g. '1min', '30s' or None."
        ) from err
    if window < pd.Timedelta(0):
        raise BehaviorDataError(f"merge_window={merge_window!r} is negative; use e.g. '1min' or None.")
    return window


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


# --------------------------------------------------------------------------- loaders


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
    trace_path, app2category_path, categories_path = Path(trace_path), Path(app2category_path), Path(categories_path)
    window = _merge_window(merge_window)
    app_to_name, n_several = _app_categories(app2category_path, categories_path)
    trace, ts = _read_trace(trace_path)

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
        records_in=len(trace),
        apps_unmapped_records=int(unmapped.sum()),
        records_merged=before_merge - len(records),
        apps_with_several_categories=n_several,
    )
    return df, stats


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
