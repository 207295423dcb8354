"""Targets per split, the seeded draws, and the fetch of the chosen windows out of the engine.

A split's targets are described per user by *segments*: user, the position of the first target, and the
number of targets (positions run on contiguously).  The k-th target of a split (in user, then time
order, as the pandas path's event index ordered them) is found from the segments' running counts, so a
draw over tens of millions of targets needs only their count: ``rng.choice(n, size)`` consumes the
generator exactly as ``rng.choice(targets, size)`` did, which keeps the same seed's dataset the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from behaviorlm_plugin.data.engine.order import EventTable
from behaviorlm_plugin.data.samples import EncodedEvents, sorted_unique
from behaviorlm_plugin.hparams.data_args import parse_time_split

NS_PER_DAY = 86400 * 10**9
US_PER_DAY, US_PER_HOUR = 86400 * 10**6, 3600 * 10**6
# ``hour(make_timestamp(ts // 1000))`` in integer arithmetic (a third of the counting query's time at 50M
# events); DuckDB's ``//`` and ``%`` truncate towards zero, hence the + a day (tests/data/test_prepare_speed.py).
HOUR_SQL = f"(((ts // 1000) % {US_PER_DAY} + {US_PER_DAY}) % {US_PER_DAY} // {US_PER_HOUR})"


@dataclass(frozen=True)
class Segments:
    """One split's targets: per segment the final user code, first target position and target count."""

    user: np.ndarray
    first: np.ndarray
    count: np.ndarray

    @property
    def total(self) -> int:
        return int(self.count.sum())

    def locate(self, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(user, position) of the k-th targets (k sorted or not)."""
        ends = np.cumsum(self.count)
        i = np.searchsorted(ends, k, side="right")
        starts = ends - self.count
        return self.user[i], self.first[i] + (k - starts[i])


def user_segments(table: EventTable, user_split: np.ndarray, history_len: int) -> dict[int, Segments]:
    """The paper's split: a user's every window goes to the user's split."""
    n = table.user_events
    users = np.arange(len(n))
    return {
        s: Segments(
            users[user_split == s],
            np.full((user_split == s).sum(), history_len),
            np.maximum(0, n - history_len)[user_split == s],
        )
        for s in range(3)
    }


def time_segments(table: EventTable, spec: str, history_len: int) -> dict[int, Segments]:
    """The deployment split: each user's last days (or last fraction of the span) are val, then test.

    An event's period is fixed by the first event after each cut (so periods follow the history order),
    and a window lies wholly inside one period: no window crosses a cut, no train window sees val/test.
    """
    val, test, days = parse_time_split(spec)
    if days:
        cut_test, cut_val = f"last - {int(test * NS_PER_DAY)}", f"last - {int((val + test) * NS_PER_DAY)}"
    else:
        cut_test = f"last - CAST({test} * (last - first) AS BIGINT)"
        cut_val = f"last - CAST({val + test} * (last - first) AS BIGINT)"
    key = table.order_key
    rows = table.con.execute(
        f"WITH span AS (SELECT u, min({key}) AS first, max({key}) AS last, count(*) AS n FROM ev GROUP BY u), "
        f"cuts AS (SELECT s.u, s.n, coalesce(min(e.pos) FILTER (WHERE e.{key} > {cut_val}), s.n) AS v, "
        f"coalesce(min(e.pos) FILTER (WHERE e.{key} > {cut_test}), s.n) AS t FROM span s JOIN ev e ON e.u = s.u "
        "GROUP BY s.u, s.n, s.first, s.last) SELECT k.code AS user, c.v, c.t, c.n FROM cuts c "
        "JOIN kept k ON k.u = c.u ORDER BY k.code"
    ).fetchnumpy()
    user, v, t, n = (rows[k].astype(np.int64) for k in ("user", "v", "t", "n"))
    bounds = {0: (np.zeros_like(v), v), 1: (v, t), 2: (t, n)}
    out = {}
    for s, (lo, hi) in bounds.items():
        count = np.maximum(0, hi - lo - history_len)
        keep = count > 0
        out[s] = Segments(user[keep], (lo + history_len)[keep], count[keep])
    return out


def register_segments(table: EventTable, segments: dict[int, Segments]) -> None:
    """``seg(u, split, first, n)`` in validation codes, and the view ``targets`` over ``ev``."""
    frames = [
        pd.DataFrame({"u": table.user_code[g.user], "split": s, "first": g.first, "n": g.count})
        for s, g in segments.items()
    ]
    con = table.con
    con.register("seg_in", pd.concat(frames, ignore_index=True))
    con.execute("CREATE OR REPLACE TABLE seg AS SELECT * FROM seg_in")
    con.unregister("seg_in")
    con.execute(
        "CREATE OR REPLACE VIEW targets AS SELECT e.u, e.pos, e.ts, e.p, e.b, s.split FROM ev e "
        "JOIN seg s ON e.u = s.u AND e.pos >= s.first AND e.pos < s.first + s.n"
    )


def target_counts(table: EventTable) -> pd.DataFrame:
    """Targets per (split, behavior, hour, place), final codes: categories, balanced pools, the baseline."""
    df = table.con.execute(f"SELECT split, b, {HOUR_SQL} AS hour, p, count(*) AS n FROM targets GROUP BY ALL").fetchdf()
    df["b"] = table.remap["behavior"][df["b"].to_numpy()]
    df["p"] = table.remap["place"][df["p"].to_numpy()]
    return df


def balanced_positions(
    table: EventTable, picks: dict[int, np.ndarray], split: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """(user, position) of the picked k-th targets of each behavior (final behavior codes) in user split ``split``
    (2: test, for test_balanced; 1: val, for val_balanced)."""
    inverse = np.flatnonzero(table.remap["behavior"] >= 0)  # final code -> validation code
    wanted = pd.DataFrame(
        {
            "b": np.concatenate([np.full(len(k), inverse[c]) for c, k in picks.items()] or [np.empty(0, np.int64)]),
            "k": np.concatenate(list(picks.values()) or [np.empty(0, np.int64)]),
        }
    )
    con = table.con
    con.register("wanted_in", wanted.astype(np.int64))
    rows = con.execute(
        "SELECT t.u, t.pos FROM (SELECT u, pos, b, row_number() OVER (PARTITION BY b ORDER BY u, pos) - 1 AS k "
        f"FROM targets WHERE split = {int(split)}) t JOIN wanted_in w ON t.b = w.b AND t.k = w.k ORDER BY t.u, t.pos"
    ).fetchnumpy()
    con.unregister("wanted_in")
    return table.remap["user_id"][rows["u"].astype(np.int64)], rows["pos"].astype(np.int64)


def fetch_windows(
    table: EventTable, users: np.ndarray, positions: np.ndarray, history_len: int
) -> tuple[EncodedEvents, np.ndarray]:
    """The events of the windows ending at (user, position), as a small :class:`EncodedEvents` in order,
    and each event's key ``user << 32 | position`` (final user codes) for :func:`local_index`."""
    offsets = np.arange(-history_len, 1, dtype=np.int64)
    pos = (positions[:, None] + offsets[None, :]).ravel()
    usr = np.repeat(users, history_len + 1)
    key = sorted_unique(usr.astype(np.int64) << 32 | pos)
    need = pd.DataFrame({"u": table.user_code[key >> 32].astype(np.int32), "pos": (key & 0xFFFFFFFF).astype(np.int64)})
    con = table.con
    con.register("need_in", need)
    rows = con.execute(
        "SELECT e.u, e.pos, e.ts, e.p, e.b FROM ev e JOIN need_in n ON e.u = n.u AND e.pos = n.pos ORDER BY e.u, e.pos"
    ).fetchnumpy()
    con.unregister("need_in")
    if len(rows["u"]) != len(need):
        raise RuntimeError(f"engine returned {len(rows['u'])} window events for {len(need)} wanted")
    ts = pd.DatetimeIndex(rows["ts"].astype("datetime64[ns]"))
    user = table.remap["user_id"][rows["u"].astype(np.int64)]
    enc = EncodedEvents(
        user=user,
        behavior=table.remap["behavior"][rows["b"].astype(np.int64)],
        place=table.remap["place"][rows["p"].astype(np.int64)],
        dow=ts.dayofweek.to_numpy().astype(np.int64),
        hour=ts.hour.to_numpy().astype(np.int64),
        timestamp=ts.to_numpy(),
        users=table.labels["user_id"],
        behaviors=table.labels["behavior"],
        places=table.labels["place"],
    )
    return enc, user << 32 | rows["pos"].astype(np.int64)


def local_index(keys: np.ndarray, users: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Indices into the fetched events of the targets at (user, position)."""
    return np.searchsorted(keys, users.astype(np.int64) << 32 | positions).astype(np.int64)
