import pandas as pd
import pytest

from behaviorlm_plugin.data.events import EVENT_COLUMNS, BehaviorDataError, load_events, validate_events


def _frame(n_users=2, per_user=3):
    rows = []
    for u in range(n_users):
        for i in range(per_user):
            rows.append(
                {"user_id": f"u{u}", "timestamp": f"2024-03-0{i + 1} 08:0{u}:00", "place": "home", "behavior": f"b{i}"}
            )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet", ".tsv"])
def test_load_each_format_round_trips(tmp_path, suffix):
    df = _frame()
    path = tmp_path / f"ev{suffix}"
    if suffix == ".csv":
        df.to_csv(path, index=False)
    elif suffix == ".tsv":
        df.to_csv(path, index=False, sep="\t")
    elif suffix == ".jsonl":
        df.to_json(path, orient="records", lines=True)
    else:
        df.to_parquet(path)
    out, stats = load_events(path)
    assert tuple(out.columns) == EVENT_COLUMNS
    assert len(out) == 6 and stats.rows_out == 6
    assert out["timestamp"].dt.hour.tolist() == [8] * 6
    assert out.groupby("user_id")["timestamp"].is_monotonic_increasing.all()


def test_column_mapping(tmp_path):
    df = _frame().rename(columns={"behavior": "intent", "user_id": "uid"})
    path = tmp_path / "ev.csv"
    df.to_csv(path, index=False)
    out, _ = load_events(path, column_map={"behavior": "intent", "user_id": "uid"})
    assert sorted(out["behavior"].unique()) == ["b0", "b1", "b2"]
    with pytest.raises(BehaviorDataError, match="unknown target"):
        load_events(path, column_map={"label": "intent"})


def test_missing_column_names_file_and_fix(tmp_path):
    path = tmp_path / "ev.csv"
    _frame().drop(columns=["place"]).to_csv(path, index=False)
    with pytest.raises(BehaviorDataError) as err:
        load_events(path)
    msg = str(err.value)
    assert str(path) in msg and "'place'" in msg and "column map" in msg


def test_unparsable_timestamp_names_row_and_value(tmp_path):
    df = _frame()
    df.loc[4, "timestamp"] = "yesterday-ish"
    path = tmp_path / "ev.csv"
    df.to_csv(path, index=False)
    with pytest.raises(BehaviorDataError) as err:
        load_events(path)
    msg = str(err.value)
    assert "row 4 (line 6)" in msg and "yesterday-ish" in msg and "timestamp" in msg


def test_empty_label_names_row_and_column(tmp_path):
    df = _frame()
    df.loc[2, "behavior"] = "  "
    path = tmp_path / "ev.csv"
    df.to_csv(path, index=False)
    with pytest.raises(BehaviorDataError, match=r"row 2 \(line 4\) column 'behavior' is empty"):
        load_events(path)


def test_duplicates_dropped_and_counted_or_refused():
    df = pd.concat([_frame(), _frame().iloc[[1]]], ignore_index=True)
    out, stats = validate_events(df, source="mem")
    assert stats.duplicates_dropped == 1 and len(out) == 6
    with pytest.raises(BehaviorDataError, match="row 6 duplicates"):
        validate_events(df, source="mem", drop_duplicates=False)


def test_users_with_too_few_events_are_skipped_and_counted():
    df = pd.concat([_frame(n_users=2, per_user=5), _frame(n_users=1, per_user=2).assign(user_id="short")])
    out, stats = validate_events(df, source="mem", min_events_per_user=3)
    assert "short" not in set(out["user_id"])
    assert stats.users_skipped_too_few_events == 1 and stats.events_skipped_too_few_events == 2


def test_no_user_left_is_an_error():
    with pytest.raises(BehaviorDataError, match="no user has at least 50 events"):
        validate_events(_frame(), source="mem", min_events_per_user=50)


def test_unknown_suffix_and_missing_file(tmp_path):
    with pytest.raises(BehaviorDataError, match="file not found"):
        load_events(tmp_path / "nope.csv")
    bad = tmp_path / "ev.xls"
    bad.write_text("x")
    with pytest.raises(BehaviorDataError, match="cannot tell the format"):
        load_events(bad)


def test_all_empty_column_is_reported():
    df = _frame()
    df["place"] = None
    with pytest.raises(BehaviorDataError, match=r"row 0 column 'place' is empty \(6 empty"):
        validate_events(df, source="mem")
