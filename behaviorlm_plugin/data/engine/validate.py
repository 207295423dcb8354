"""The checks of :func:`behaviorlm_plugin.data.events.validate_events` on the table ``raw``, same messages.

Labels are checked once per distinct value (a log repeats a few thousand labels millions of times) and
coded as integers in sorted order; timestamps become ``ts`` (local wall-clock time) and ``ord`` (what
events are ordered by), both int64 nanoseconds.  Native timestamps and epoch numbers are converted in
SQL; text timestamps go through :func:`~behaviorlm_plugin.data.timestamps.parse_timestamps` in batches
of ``chunk_rows`` (the exact rules of the pandas path, with memory bounded by the batch).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from behaviorlm_plugin.data.engine.read import Source
from behaviorlm_plugin.data.events import BAD_LABEL_CHARS, BehaviorDataError
from behaviorlm_plugin.data.timestamps import EPOCH_RANGES, TimestampError, epoch_unit, order_key, parse_timestamps

logger = logging.getLogger("behaviorlm_plugin.data.events")

LABEL_COLUMNS = ("user_id", "place", "behavior")
NATIVE_TIMES = ("TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S", "DATE", "TIMESTAMP_US")
NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")
FLOATS = ("FLOAT", "DOUBLE", "DECIMAL")
UNIT_NS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
FAR_MARGIN_NS = 365 * 86400 * 10**9
NS_PER_DAY = 86400 * 10**9


def _column_type(con, column: str) -> str:
    rows = con.execute("SELECT column_name, column_type FROM (DESCRIBE raw)").fetchall()
    return dict(rows)[column].upper()


def _time_error(source: Source, err: TimestampError, row: int | None) -> BehaviorDataError:
    if row is None:
        return BehaviorDataError(f"{source.name}: column 'timestamp': {err}")
    name, at = source.locate(row)
    return BehaviorDataError(f"{name}: {at} column 'timestamp': {err}")


def _numeric_times(con, source: Source, col: str, unit: str, floats: bool) -> str:
    """SQL for epoch numbers (UTC instants shown as UTC wall-clock time); checks the unit like the pandas path."""
    finite = f"isfinite({col}::DOUBLE)" if floats else "true"
    lo, hi, n = con.execute(
        f"SELECT min(abs({col}::DOUBLE)), max(abs({col}::DOUBLE)), count(*) FROM raw r "
        f"WHERE {col} IS NOT NULL AND {finite}"
    ).fetchall()[0]
    try:
        if not n:
            raise TimestampError("numeric timestamps are all missing")
        unit = epoch_unit(np.array([lo, hi], dtype=float), unit)
    except TimestampError as err:
        raise _time_error(source, err, None) from err
    bad = f"{col} IS NULL" + (f" OR NOT isfinite({col}::DOUBLE)" if floats else "")
    row = con.execute(f"SELECT min(row) FROM raw r WHERE {bad}").fetchall()[0][0]
    if row is not None:
        raise _time_error(source, TimestampError("is empty", int(row)), int(row))
    if floats:
        return f"CAST(round({col}::DOUBLE * {UNIT_NS[unit]}) AS BIGINT)"
    return f"({col}::BIGINT * {UNIT_NS[unit]})::BIGINT"


def _batch_times(con, source: Source, args: dict, chunk_rows: int) -> None:
    """``times(row, ts, ord)`` through the pandas parser, batch by batch (text and zone-aware timestamps)."""
    con.execute("CREATE OR REPLACE TABLE times (row BIGINT, ts BIGINT, ord BIGINT)")
    fmt, unit, zone = args["timestamp_format"], args["timestamp_unit"], args["timezone"]
    numeric_text = _all_numeric_text(con) if fmt is None else False
    cursor = con.cursor()  # the batches stream from their own cursor while this one inserts
    reader = cursor.execute("SELECT row, timestamp FROM raw ORDER BY row").to_arrow_reader(chunk_rows)
    for batch in reader:
        frame = batch.to_pandas()
        raw = frame["timestamp"]
        if numeric_text and raw.dtype == object:  # decided for the whole column, as pandas' reader does
            raw = pd.to_numeric(raw)
        try:
            ts = parse_timestamps(raw, fmt=fmt, unit=unit, timezone=zone)
        except TimestampError as err:
            row = int(frame["row"].iloc[err.row]) if err.row is not None else None
            raise _time_error(source, err, row) from err
        order = ts if zone else order_key(raw, ts, fmt)
        out = pd.DataFrame(
            {"row": frame["row"], "ts": ts.to_numpy().view(np.int64), "ord": order.to_numpy().view(np.int64)}
        )
        con.register("times_in", out)
        con.execute("INSERT INTO times SELECT * FROM times_in")
        con.unregister("times_in")
    cursor.close()


NAIVE_ISO = r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?$"


def _naive_iso(con) -> bool:
    """Every value is a plain ISO date/time without an offset that SQL parses: no need for the pandas parser."""
    return con.execute(
        f"SELECT count(*) = 0 FROM raw WHERE timestamp IS NULL OR NOT regexp_full_match(timestamp, '{NAIVE_ISO}') "
        "OR try_cast(timestamp AS TIMESTAMP_NS) IS NULL"
    ).fetchall()[0][0]


def _all_numeric_text(con) -> bool:
    return con.execute(
        "SELECT count(*) = 0 FROM raw WHERE timestamp IS NOT NULL AND try_cast(timestamp AS DOUBLE) IS NULL"
    ).fetchall()[0][0]


def time_columns(con, source: Source, args: dict, chunk_rows: int) -> tuple[str, str, str]:
    """(local-time SQL, order SQL, a table to join on ``row`` for them or '') for ``raw r``."""
    kind = _column_type(con, "timestamp").split("(")[0]
    zone, fmt = args["timezone"], args["timestamp_format"]
    if kind in NATIVE_TIMES:
        row = con.execute("SELECT min(row) FROM raw WHERE timestamp IS NULL").fetchall()[0][0]
        if row is not None:
            raise _time_error(source, TimestampError("is empty", int(row)), int(row))
        expr = "epoch_ns(r.timestamp::TIMESTAMP_NS)"
        return expr, expr, ""
    if fmt is None and zone is None:
        if kind in NUMERIC or kind in FLOATS:
            expr = _numeric_times(con, source, "r.timestamp", args["timestamp_unit"], kind in FLOATS)
            return expr, expr, ""
        if kind == "VARCHAR" and _all_numeric_text(con):
            ints = con.execute(
                "SELECT count(*) = 0 FROM raw WHERE timestamp IS NOT NULL AND try_cast(timestamp AS BIGINT) IS NULL"
            ).fetchall()[0][0]
            col = f"try_cast(r.timestamp AS {'BIGINT' if ints else 'DOUBLE'})"
            expr = _numeric_times(con, source, col, args["timestamp_unit"], not ints)
            return expr, expr, ""
        if kind == "VARCHAR" and _naive_iso(con):
            expr = "epoch_ns(CAST(r.timestamp AS TIMESTAMP_NS))"
            return expr, expr, ""
    _batch_times(con, source, args, chunk_rows)
    return "t.ts", "t.ord", "times"


def exact_quantiles(con, table: str, column: str, qs: tuple[float, ...], n: int) -> list[float]:
    """``quantile_cont(column, q)`` of each q, exactly as DuckDB computes it, without sorting the column:
    a per-day histogram finds the day holding each needed order statistic, and only those days' values are
    fetched (in one scan) and sorted."""
    day = f"floor({column}::DOUBLE / {NS_PER_DAY})"  # monotonic in the value, so days keep the order
    hist = con.execute(f"SELECT {day} AS d, count(*) AS c FROM {table} GROUP BY d ORDER BY d").fetchnumpy()
    days, ends = hist["d"], np.cumsum(hist["c"].astype(np.int64))
    # DuckDB's interpolation: RN = (n - 1) q, lo + (hi - lo) (RN - floor RN)
    ranks = {r for q in qs for r in (math.floor((n - 1) * q), math.ceil((n - 1) * q))}
    where = {r: int(np.searchsorted(ends, r, side="right")) for r in ranks}  # rank -> its day's index
    wanted = ", ".join(repr(float(days[i])) for i in sorted(set(where.values())))
    got = con.execute(f"SELECT {day} AS d, {column} AS v FROM {table} WHERE {day} IN ({wanted})").fetchnumpy()
    values = {d: np.sort(got["v"][got["d"] == d]) for d in np.unique(got["d"])}

    def nth(rank: int) -> float:  # the rank-th smallest value (0-based)
        i = where[rank]
        return float(values[days[i]][rank - int(ends[i] - hist["c"][i])])

    out = []
    for q in qs:
        rn = (n - 1) * q
        lo = nth(math.floor(rn))
        out.append(lo if math.ceil(rn) == math.floor(rn) else lo + (nth(math.ceil(rn)) - lo) * (rn - math.floor(rn)))
    return out


def warn_far_times(con, source: Source, stats_extra: dict, table: str = "ev") -> None:
    """Events far outside the central 98% of the log's dates: counted and warned about, kept.

    Runs on ``table`` (``ev`` before duplicates are dropped: every checked event, as ``clean`` holds them).
    """
    n = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    if n < 10:
        return
    lo, hi = exact_quantiles(con, table, "ts", (0.01, 0.99), n)
    far = f"(ts < {lo} - {FAR_MARGIN_NS} OR ts > {hi} + {FAR_MARGIN_NS})"
    count, row = con.execute(f"SELECT count(*), min(row) FROM {table} WHERE {far}").fetchall()[0]
    if count:
        value = con.execute(f"SELECT ts FROM {table} WHERE row = {row}").fetchall()[0][0]
        stats_extra["timestamps_far_from_span"] = int(count)
        logger.warning(
            "%s: %d event(s) dated far outside the log's span, first at %s (%s); kept, but check for typos",
            source.name,
            int(count),
            source.locate(int(row))[1],
            pd.Timestamp(value),
        )


def _nested_name(value) -> str | None:
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "dict"
    return None


def label_codes(con, source: Source, col: str) -> tuple[str, ...]:
    """Check ``col`` once per distinct value; leaves ``voc_<col>(v, code)``; returns the labels by code."""
    con.execute(
        f"CREATE OR REPLACE TABLE voc_{col} AS "
        f"SELECT {col} AS v, count(*) AS n, min(row) AS first FROM raw GROUP BY ALL"
    )
    groups = con.execute(f"SELECT v, n, first FROM voc_{col} ORDER BY rowid").fetchall()
    nested = [(first, v) for v, _, first in groups if v is not None and _nested_name(v)]
    if nested:
        first, value = min(nested, key=lambda x: x[0])
        raise BehaviorDataError(
            f"{source.where(int(first))} column {col!r} holds a {_nested_name(value)}, not a single value; "
            "give one label per event"
        )
    cleaned = [None if v is None else str(v).strip() for v, _, _ in groups]
    empty = [(first, n) for (_, n, first), c in zip(groups, cleaned, strict=True) if not c]
    if empty:
        first = min(f for f, _ in empty)
        raise BehaviorDataError(
            f"{source.where(int(first))} column {col!r} is empty "
            f"({sum(n for _, n in empty)} empty value(s) in total). Fill or drop those rows."
        )
    if col in ("behavior", "place"):
        for (_, _, first), label in sorted(zip(groups, cleaned, strict=True), key=lambda x: x[1]):
            bad = next((what for ch, what in BAD_LABEL_CHARS.items() if ch in label), None)
            if bad:
                raise BehaviorDataError(
                    f"{source.where(int(first))} column {col!r}: {label!r} contains {bad}; the prompt writes "
                    f"each {col} inside comma-separated text on one line, so rename it (e.g. replace the "
                    "character with a space or '/')"
                )
    labels = tuple(sorted(set(cleaned)))
    index = {label: i for i, label in enumerate(labels)}
    codes = pd.DataFrame({"code": np.array([index[c] for c in cleaned], dtype=np.int32)})
    con.register("codes_in", codes)
    con.execute(f"CREATE OR REPLACE TABLE voc_{col} AS SELECT v, code FROM voc_{col} POSITIONAL JOIN codes_in")
    con.unregister("codes_in")
    return labels


def build_clean(con, source: Source, args: dict, chunk_rows: int) -> tuple[dict[str, tuple[str, ...]], str]:
    """The view ``clean(u, ts, ord, p, b, row)``: every event checked and coded; returns the vocabularies and
    the column events are ordered by (``ts`` when the order key is the local time itself, else ``ord``).

    A view, not a table: the one window pass that orders the log reads it once (a 50M-row table less to
    write and read back)."""
    ts_sql, ord_sql, times = time_columns(con, source, args, chunk_rows)
    vocab = {col: label_codes(con, source, col) for col in LABEL_COLUMNS}
    join_times = f"JOIN {times} t ON t.row = r.row" if times else ""
    con.execute("SET preserve_insertion_order = false")
    con.execute(
        f"CREATE OR REPLACE VIEW clean AS SELECT vu.code AS u, {ts_sql} AS ts, {ord_sql} AS ord, vp.code AS p, "
        f"vb.code AS b, r.row AS row FROM raw r {join_times} "
        "JOIN voc_user_id vu ON r.user_id = vu.v JOIN voc_place vp ON r.place = vp.v "
        "JOIN voc_behavior vb ON r.behavior = vb.v"
    )
    return vocab, ("ts" if ord_sql == ts_sql else "ord")


__all__ = ["EPOCH_RANGES", "build_clean", "exact_quantiles", "label_codes", "time_columns", "warn_far_times"]
