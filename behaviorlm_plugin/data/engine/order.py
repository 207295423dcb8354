"""Duplicates, too-short users and per-user order: the validated log as an :class:`EventTable`.

``ev(u, pos, ts, p, b, row, tie)`` holds every kept event with its position in its user's history (ordered
by the order key, then source row, as the pandas path's stable sort did); the order key is ``ts`` itself
unless it differs from the local time (text timestamps with offsets), when ``ev`` carries it as ``ord``.
Codes in ``ev`` are the validation codes; :attr:`EventTable.remap` turns them into the final ones (labels
of the kept events, sorted), which is what the pandas path's ``encode_events`` gave.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from behaviorlm_plugin.data.engine.connect import Database
from behaviorlm_plugin.data.engine.read import Source, frame_codes, read_raw
from behaviorlm_plugin.data.engine.validate import build_clean, warn_far_times
from behaviorlm_plugin.data.events import EVENT_COLUMNS, BehaviorDataError, EventStats
from behaviorlm_plugin.data.samples import sorted_unique
from behaviorlm_plugin.hparams.data_args import EngineArguments


def int_type(n: int) -> str:
    """The narrowest SQL integer type that holds 0 .. n (a narrower ``ev`` is a cheaper sort and spill)."""
    return "SMALLINT" if n < 2**15 else "INTEGER" if n < 2**31 else "BIGINT"


@dataclass
class EventTable:
    """The validated, ordered log inside the engine, plus its vocabularies and per-user counts."""

    db: Database
    source: str
    stats: EventStats
    labels: dict[str, tuple[str, ...]]  # final vocabularies: user_id, place, behavior
    remap: dict[str, np.ndarray]  # validation code -> final code (-1: not among the kept events)
    user_events: np.ndarray  # events per kept user, by final user code
    user_code: np.ndarray  # the validation code of each kept user (final code order)
    behavior_code_events: np.ndarray  # kept events per behavior, by validation code
    order_key: str = "ts"  # the column of ``ev`` events are ordered by: ``ts`` or ``ord``
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def con(self):
        return self.db.con

    def behavior_events(self) -> np.ndarray:
        """Kept events per behavior, by final code."""
        out = np.zeros(len(self.labels["behavior"]), dtype=np.int64)
        codes = np.flatnonzero(self.behavior_code_events)
        out[self.remap["behavior"][codes]] = self.behavior_code_events[codes]
        return out

    def __len__(self) -> int:
        return int(self.user_events.sum())

    def close(self) -> None:
        self.db.close()

    def to_frame(self) -> pd.DataFrame:
        """The whole log as the pandas path's frame (sorted by user, time); small logs only."""
        rows = self.con.execute(
            "SELECT e.u, e.ts, e.p, e.b FROM ev e JOIN kept k ON e.u = k.u ORDER BY k.code, e.pos"
        ).fetchnumpy()
        return pd.DataFrame(
            {
                "user_id": np.asarray(self.labels["user_id"], dtype=object)[self.remap["user_id"][rows["u"]]],
                "timestamp": rows["ts"].astype("datetime64[ns]"),
                "place": np.asarray(self.labels["place"], dtype=object)[self.remap["place"][rows["p"]]],
                "behavior": np.asarray(self.labels["behavior"], dtype=object)[self.remap["behavior"][rows["b"]]],
            },
            columns=list(EVENT_COLUMNS),
        )


def _order(con, key: str, vocab: dict, rows: int) -> None:
    """``ev``: the one window pass over the log, numbering each user's events by (order key, source row) and
    flagging runs of equal order keys (where duplicates can sit).  Only the columns later steps read, in the
    narrowest types that hold them: this is the sort that spills at 50M events."""
    p, b = int_type(len(vocab["place"])), int_type(len(vocab["behavior"]))
    con.execute(
        f"CREATE OR REPLACE TABLE ev AS SELECT u, (row_number() OVER w - 1)::INTEGER AS pos, ts, "
        f"{'ord, ' if key == 'ord' else ''}p::{p} AS p, b::{b} AS b, row::{int_type(rows)} AS row, "
        f"({key} = lag({key}) OVER w OR {key} = lead({key}) OVER w) AS tie FROM clean "
        f"WINDOW w AS (PARTITION BY u ORDER BY {key}, row)"
    )


def _drop_duplicates(con, source: Source, stats: EventStats, drop: bool, same_clock: bool) -> None:
    """Exact duplicates (user, local time, place, behavior) after the first are dropped and counted, or refused.

    When every event's order key is its local time, duplicates sit in runs of equal keys, so only those
    runs are grouped; otherwise every event is.  Dropping deletes those rows and renumbers only the users
    who had one (their kept events keep their order), instead of a second window pass over the log.
    """
    pool = "(SELECT * FROM ev WHERE tie)" if same_clock else "ev"
    con.execute(
        f"CREATE OR REPLACE TABLE dup AS SELECT u, row FROM (SELECT u, row, row_number() OVER "
        f"(PARTITION BY u, ts, p, b ORDER BY row) AS k FROM {pool}) WHERE k > 1"
    )
    count, first = con.execute("SELECT count(*), min(row) FROM dup").fetchall()[0]
    if not count:
        return
    if not drop:
        raise BehaviorDataError(
            f"{source.where(int(first))} duplicates an earlier event ({int(count)} duplicate(s)). "
            "Remove them or allow dropping duplicates."
        )
    stats.duplicates_dropped = int(count)
    con.execute("DELETE FROM ev WHERE row IN (SELECT row FROM dup)")
    con.execute(
        "UPDATE ev SET pos = f.pos FROM (SELECT row, row_number() OVER (PARTITION BY u ORDER BY pos) - 1 AS pos "
        "FROM ev WHERE u IN (SELECT DISTINCT u FROM dup)) f WHERE ev.row = f.row"
    )


def _keep_users(con, source: str, stats: EventStats, min_events: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """(validation code, events) of each user with at least ``min_events`` events, and whether that is every
    user; the rest are counted."""
    per_user = con.execute("SELECT u, count(*) AS n FROM ev GROUP BY u ORDER BY u").fetchnumpy()
    codes, counts = per_user["u"].astype(np.int64), per_user["n"].astype(np.int64)
    few = counts < min_events
    stats.users_in = len(codes)
    stats.users_skipped_too_few_events = int(few.sum())
    stats.events_skipped_too_few_events = int(counts[few].sum())
    if few.all():
        raise BehaviorDataError(
            f"{source}: no user has at least {min_events} events after validation; "
            "check the user_id column or lower the history length."
        )
    return codes[~few], counts[~few], not few.any()


def _finish(
    db: Database, source: str, stats: EventStats, vocab: dict, min_events: int, count: bool, order_key: str = "ts"
) -> EventTable:
    con = db.con
    user_code, user_events, every = _keep_users(con, source, stats if count else EventStats(source), min_events)
    if count:
        stats.rows_out = int(user_events.sum())
    n_users = len(vocab["user_id"])
    remap = {"user_id": np.full(n_users, -1, dtype=np.int64)}
    remap["user_id"][user_code] = np.arange(len(user_code))
    con.register("kept_in", pd.DataFrame({"u": user_code.astype(np.int32), "code": np.arange(len(user_code))}))
    con.execute("CREATE OR REPLACE TABLE kept AS SELECT * FROM kept_in")
    con.unregister("kept_in")
    labels = {"user_id": tuple(vocab["user_id"][c] for c in user_code)}
    kept = "" if every else " SEMI JOIN kept k ON e.u = k.u"  # one pass for both columns and the counts
    pairs = con.execute(f"SELECT e.p, e.b, count(*) AS n FROM ev e{kept} GROUP BY ALL").fetchnumpy()
    for col, key in (("place", "p"), ("behavior", "b")):
        present = sorted_unique(pairs[key].astype(np.int64))
        remap[col] = np.full(len(vocab[col]), -1, dtype=np.int64)
        remap[col][present] = np.arange(len(present))
        labels[col] = tuple(vocab[col][c] for c in present)
    by_code = np.bincount(pairs["b"].astype(np.int64), weights=pairs["n"], minlength=len(vocab["behavior"]))
    return EventTable(db, source, stats, labels, remap, user_events, user_code, by_code.astype(np.int64), order_key)


def load_event_table(
    path: str | Path,
    *,
    column_map: dict[str, str] | None = None,
    fmt: str | None = None,
    timestamp_format: str | None = None,
    timestamp_unit: str = "auto",
    timezone: str | None = None,
    min_events_per_user: int = 2,
    drop_duplicates: bool = True,
    settings: EngineArguments | None = None,
    log=None,
) -> EventTable:
    """Read and validate a log file (or a folder of Parquet parts) in the engine."""
    t0 = time.perf_counter()
    say = log or (lambda _msg: None)
    db = Database(settings)
    try:
        con = db.con
        say(f"[prepare] 1/4 reading {path} (engine memory limit {db.settings.memory_limit})")
        source = read_raw(con, path, fmt, column_map)
        stats = EventStats(source=source.name, rows_in=con.execute("SELECT count(*) FROM raw").fetchall()[0][0])
        say(f"[prepare] 2/4 validating {stats.rows_in:,} events ({time.perf_counter() - t0:.1f}s)")
        times = {"timestamp_format": timestamp_format, "timestamp_unit": timestamp_unit, "timezone": timezone}
        vocab, key = build_clean(con, source, times, db.settings.chunk_rows)
        say(f"[prepare] 3/4 de-duplicating and ordering by user and time ({time.perf_counter() - t0:.1f}s)")
        _order(con, key, vocab, stats.rows_in)
        warn_far_times(con, source, stats.extra)
        same_clock = key == "ts" or con.execute("SELECT count(*) = 0 FROM ev WHERE ts <> ord").fetchall()[0][0]
        _drop_duplicates(con, source, stats, drop_duplicates, same_clock)
        table = _finish(db, source.name, stats, vocab, min_events_per_user, True, key)
        table.timings["engine_load_s"] = time.perf_counter() - t0
        return table
    except BaseException:
        db.close()
        raise


def table_from_frame(df: pd.DataFrame, stats: EventStats, settings: EngineArguments | None = None) -> EventTable:
    """A frame a loader already validated and sorted (or the simulator's), into the engine as is: its row
    order is the history order, and its vocabularies are those of the pandas path."""
    db = Database(settings)
    try:
        frame, vocab = frame_codes(df)
        con = db.con
        con.register("frame_in", frame)
        con.execute(
            "CREATE OR REPLACE TABLE ev AS SELECT u, (row_number() OVER (PARTITION BY u ORDER BY row) - 1)::INTEGER "
            "AS pos, ts, p, b, row, false AS tie FROM frame_in"
        )
        con.unregister("frame_in")
        table = _finish(db, stats.source, stats, vocab, 1, False)
        for col in ("user_id", "place", "behavior"):  # every category stays, used or not (as encode_events kept)
            table.remap[col] = np.arange(len(vocab[col]), dtype=np.int64)
            table.labels[col] = vocab[col]
        events = np.zeros(len(vocab["user_id"]), dtype=np.int64)
        events[table.user_code] = table.user_events
        table.user_events, table.user_code = events, np.arange(len(events), dtype=np.int64)
        con.execute("CREATE OR REPLACE TABLE kept AS SELECT u, u AS code FROM kept")
        return table
    except BaseException:
        db.close()
        raise
