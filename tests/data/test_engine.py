"""The DuckDB event path: every format, the pandas path's messages and results, the memory setting, the draws."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from behaviorlm_plugin.data.engine import EngineArguments, load_event_table, table_from_frame
from behaviorlm_plugin.data.engine.connect import Database
from behaviorlm_plugin.data.events import BehaviorDataError, EventStats, load_events
from behaviorlm_plugin.data.samples import balanced_subset, encode_events, split_users, subsample, window_targets
from behaviorlm_plugin.data.windows import build_windows, split_rng
from behaviorlm_plugin.hparams.data_args import PrepareArguments


def events_frame(users: int = 6, per_user: int = 30, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        t = pd.Timestamp("2024-03-04 07:00")
        for _ in range(per_user):
            t += pd.Timedelta(minutes=int(rng.integers(30, 300)))
            rows.append(
                (f"u{u}", t, str(rng.choice(["home", "work"])), str(rng.choice(["Gaming", "Reading", "Cooking"])))
            )
    df = pd.DataFrame(rows, columns=["user_id", "timestamp", "place", "behavior"])
    return df.sample(frac=1, random_state=seed).reset_index(drop=True)  # the engine must order it itself


def write(df: pd.DataFrame, path) -> None:
    name = path.name
    if name.endswith((".csv", ".csv.gz")):
        df.to_csv(path, index=False)
    elif name.endswith(".tsv"):
        df.to_csv(path, index=False, sep="\t")
    elif name.endswith((".jsonl", ".jsonl.gz")):
        text = df.assign(timestamp=df["timestamp"].astype(str)).to_json(orient="records", lines=True)
        path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    else:
        df.to_parquet(path)


def engine_frame(path, **kw) -> tuple[pd.DataFrame, EventStats]:
    table = load_event_table(path, **kw)
    try:
        return table.to_frame(), table.stats
    finally:
        table.close()


@pytest.mark.parametrize("name", ["ev.csv", "ev.csv.gz", "ev.tsv", "ev.jsonl", "ev.jsonl.gz", "ev.parquet"])
def test_every_format_gives_the_pandas_paths_events(tmp_path, name):
    df = events_frame()
    df = pd.concat([df, df.iloc[[3, 7]]], ignore_index=True)  # two exact duplicates
    write(df, tmp_path / name)
    got, stats = engine_frame(tmp_path / name, min_events_per_user=2)
    want, want_stats = load_events(tmp_path / name, min_events_per_user=2)
    pd.testing.assert_frame_equal(got, want.astype({"timestamp": "datetime64[ns]"}), check_dtype=False)
    assert stats.to_dict() == want_stats.to_dict() and stats.duplicates_dropped == 2


def test_a_folder_of_parquet_parts_is_one_log(tmp_path):
    df = events_frame()
    (tmp_path / "parts").mkdir()
    for i, part in enumerate(np.array_split(df, 3)):
        part.to_parquet(tmp_path / "parts" / f"part-{i}.parquet")
    got, stats = engine_frame(tmp_path / "parts")
    assert stats.rows_in == len(df)
    want, _ = load_events(_whole(df, tmp_path))
    pd.testing.assert_frame_equal(got, want.astype({"timestamp": "datetime64[ns]"}), check_dtype=False)
    bad = df.copy()
    bad.loc[len(df) - 1, "behavior"] = " "
    for i, part in enumerate(np.array_split(bad, 3)):
        part.to_parquet(tmp_path / "parts" / f"part-{i}.parquet")
    last = len(np.array_split(bad, 3)[2]) - 1
    with pytest.raises(BehaviorDataError, match=rf"part-2\.parquet: row {last} column 'behavior' is empty"):
        engine_frame(tmp_path / "parts")


def _whole(df, tmp_path):
    df.to_parquet(tmp_path / "whole.parquet")
    return tmp_path / "whole.parquet"


def _hostile_cases():
    def edit(row, col, value):
        def f(df):
            df = df.astype({col: object})
            df.loc[row, col] = value
            return df

        return f

    return {
        "missing column": ("ev.csv", lambda df: df.drop(columns="place")),
        "bad timestamp": ("ev.csv", edit(4, "timestamp", "yesterday-ish")),
        "impossible date": ("ev.csv", edit(5, "timestamp", "2024-02-30 08:00:00")),
        "empty behavior": ("ev.csv", edit(2, "behavior", "")),
        "comma in behavior": ("ev.csv", edit(7, "behavior", "Reading, slowly")),
        "tab in place": ("ev.tsv", edit(3, "place", "a\tb")),
        "empty place": ("ev.parquet", edit(6, "place", None)),
        "missing time": ("ev.jsonl", edit(8, "timestamp", None)),
        "implausible epoch": ("ev.csv", lambda df: df.assign(timestamp=np.arange(len(df)) + 5)),
        "header only": ("ev.csv", lambda df: df.iloc[:0]),
    }


@pytest.mark.parametrize("case", list(_hostile_cases()))
def test_hostile_inputs_get_the_pandas_paths_message(tmp_path, case):
    name, change = _hostile_cases()[case]
    write(change(events_frame().sort_values(["user_id", "timestamp"], ignore_index=True)), tmp_path / name)
    with pytest.raises(BehaviorDataError) as want:
        load_events(tmp_path / name)
    with pytest.raises(BehaviorDataError) as got:
        engine_frame(tmp_path / name)
    assert str(got.value) == str(want.value)


def test_broken_and_nested_jsonl_lines_are_named(tmp_path):
    good = [
        json.dumps({"user_id": "u", "timestamp": f"2024-03-01 0{i}:00", "place": "h", "behavior": "b"})
        for i in range(5)
    ]
    path = tmp_path / "ev.jsonl"
    path.write_text("\n".join([*good[:3], "{not json", *good[3:]]) + "\n")
    with pytest.raises(BehaviorDataError, match=r"line 4 is not valid JSON"):
        engine_frame(path)
    rows = [json.loads(line) for line in good]
    rows[2]["behavior"] = ["a", "b"]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(BehaviorDataError, match=r"row 2 \(line 3\) column 'behavior' holds a list"):
        engine_frame(path)


def test_duplicates_can_be_refused_naming_the_row(tmp_path):
    df = events_frame().sort_values(["user_id", "timestamp"], ignore_index=True)
    df = pd.concat([df, df.iloc[[10]]], ignore_index=True)
    write(df, tmp_path / "ev.parquet")
    with pytest.raises(BehaviorDataError, match=rf"row {len(df) - 1} duplicates an earlier event \(1 duplicate"):
        engine_frame(tmp_path / "ev.parquet", drop_duplicates=False)


def test_the_memory_setting_reaches_the_engine_and_is_checked(tmp_path):
    with Database(EngineArguments(memory_limit="300MB", threads=1, temp_dir=str(tmp_path))) as db:
        limit = db.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
        threads = db.con.execute("SELECT current_setting('threads')").fetchall()[0][0]
        assert limit.replace(" ", "").upper() in ("286.1MIB", "300.0MB", "300MB") and int(threads) == 1
        assert db.folder.parent == tmp_path
    assert not list(tmp_path.iterdir())  # the database and its spill files go with it
    with pytest.raises(ValueError, match=r"engine\.memory_limit must look like 2GB"):
        PrepareArguments(synthetic=True, engine=EngineArguments(memory_limit="lots"))
    write(events_frame(), tmp_path / "ev.parquet")  # a tight limit still gives the same events
    small, _ = engine_frame(tmp_path / "ev.parquet", settings=EngineArguments(memory_limit="64MB", threads=1))
    assert len(small) == 180


def _reference_draws(df: pd.DataFrame, args: PrepareArguments) -> dict[str, list]:
    """The pandas path's draws on a sorted frame, as (user, timestamp) of each chosen target."""
    enc = encode_events(df)
    targets = window_targets(enc.user, args.history_len)
    split = split_users(len(enc.users), args.ratios, seed=args.seed)[enc.user[targets]]
    by = {s: targets[split == i] for i, s in enumerate(("train", "val", "test"))}
    chosen = {
        "train_all": subsample(by["train"], args.max_train_samples, split_rng(args, 1)),
        "val": subsample(by["val"], args.max_val_samples, split_rng(args, 2)),
        "test": subsample(by["test"], args.max_test_samples, split_rng(args, 3)),
    }
    chosen["test_balanced"], _ = balanced_subset(
        by["test"], enc.behavior, len(enc.behaviors), args.balanced_per_class, split_rng(args, 4)
    )
    chosen["val_balanced"], _ = balanced_subset(  # the same draw on val users, its own stream
        by["val"], enc.behavior, len(enc.behaviors), args.balanced_per_class, split_rng(args, 5)
    )
    chosen["train_pool"], _ = balanced_subset(  # selection's pool: train users, pool_per_class each
        by["train"], enc.behavior, len(enc.behaviors), args.pool_per_class, split_rng(args, 6)
    )
    return {s: [(enc.users[enc.user[t]], enc.timestamp[t]) for t in c] for s, c in chosen.items()}


def test_engine_draws_are_the_pandas_paths_draws():
    df = events_frame(users=30, per_user=40, seed=3).sort_values(["user_id", "timestamp"], ignore_index=True)
    args = PrepareArguments(
        synthetic=True, history_len=5, max_train_samples=50, max_val_samples=9, max_test_samples=7,
        balanced_per_class=4, seed=11,
    )  # fmt: skip
    table = table_from_frame(df, EventStats(source="frame"))
    try:
        w = build_windows(table, args, "frame")
    finally:
        table.close()
    got = {s: [(w.enc.users[w.enc.user[t]], w.enc.timestamp[t]) for t in c] for s, c in w.chosen.items()}
    assert got == _reference_draws(df, args)


def _periods(w, history_len: int) -> dict[str, dict[str, tuple]]:
    """Per split and user: (first, last) timestamp over all events of its windows (history and target)."""
    out = {}
    for split in ("train_all", "val", "test"):
        t = w.chosen[split]
        window = t[:, None] - history_len + np.arange(history_len + 1)[None, :]
        users = np.array(w.enc.users)[w.enc.user[t]]
        times = w.enc.timestamp[window]
        out[split] = {}
        for u in np.unique(users):
            mine = times[users == u]
            out[split][u] = (mine.min(), mine.max())
    return out


@pytest.mark.parametrize("spec", ["0.2,0.2", "2d,2d"])
def test_time_split_windows_never_cross_a_cut_and_train_never_sees_the_future(spec):
    df = events_frame(users=8, per_user=120, seed=5).sort_values(["user_id", "timestamp"], ignore_index=True)
    args = PrepareArguments(
        synthetic=True, history_len=5, split_by="time", time_split=spec, max_train_samples=None,
        max_val_samples=None, max_test_samples=None, balanced_per_class=1000,
    )  # fmt: skip
    table = table_from_frame(df, EventStats(source="frame"))
    try:
        w = build_windows(table, args, "frame")
    finally:
        table.close()
    periods = _periods(w, args.history_len)
    assert all(len(periods[s]) == 8 for s in periods)  # every user is in every period
    for u in periods["train_all"]:
        assert periods["train_all"][u][1] < periods["val"][u][0]  # no window crosses the train/val cut
        assert periods["val"][u][1] < periods["test"][u][0]  # nor the val/test cut
    # every window inside a period: a user's n events in one period give n - H windows, no more
    assert w.windows_available["train"] + w.windows_available["val"] + w.windows_available["test"] < len(df) - 8 * 5
    assert set(w.chosen["test_balanced"]) <= set(w.chosen["test"])


def test_time_split_settings_are_checked():
    for bad in ("0.5,0.6", "7d,0.1", "x", "0.1,0"):
        with pytest.raises(ValueError, match="--time-split"):
            PrepareArguments(synthetic=True, split_by="time", time_split=bad)


def test_prepare_with_the_time_split_records_it(tmp_path):
    from conftest import small_prepare_args

    from behaviorlm_plugin.data.prepare import prepare

    stats = prepare(small_prepare_args(tmp_path, split_by="time", time_split="3d,3d"), log=lambda _m: None)
    assert stats["splits"]["by"] == "time" and stats["arguments"]["time_split"] == "3d,3d"
    assert all(n > 0 for n in stats["splits"]["windows_available"].values())
    assert stats["splits"]["user_overlap"]["train_test"] > 0  # the same users, later in time


def test_the_ordered_log_carries_an_order_key_only_where_it_differs_from_local_time(tmp_path):
    df = events_frame(users=3, per_user=12)
    write(df, tmp_path / "ev.parquet")
    table = load_event_table(tmp_path / "ev.parquet")
    try:  # native times: ordered by the local time itself, no second 8-byte column through the sort
        assert table.order_key == "ts" and "ord" not in [c[0] for c in table.con.execute("DESCRIBE ev").fetchall()]
    finally:
        table.close()
    travel = df.assign(timestamp=df["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S") + "+02:00")
    travel.loc[travel.index[::3], "timestamp"] = df["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S") + "-05:00"
    write(travel, tmp_path / "travel.csv")
    table = load_event_table(tmp_path / "travel.csv")
    try:  # offsets: ordered by the instant, which is not the local time
        assert table.order_key == "ord"
        got = table.to_frame()
    finally:
        table.close()
    want, _ = load_events(tmp_path / "travel.csv")
    pd.testing.assert_frame_equal(got, want.astype({"timestamp": "datetime64[ns]"}), check_dtype=False)
