"""Tests for the Foursquare TSMC2014 and Tsinghua App Usage loaders and the event-format registry.

Hermetic: files are built in tmp_path.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from behaviorlm_plugin.data import loaders
from behaviorlm_plugin.data.events import EVENT_COLUMNS, BehaviorDataError, EventStats, validate_events
from behaviorlm_plugin.data.loaders import (
    format_names,
    get_event_format,
    load_app_usage,
    load_app_usage_dir,
    load_foursquare_tsmc,
    load_source,
    register_event_format,
)
from behaviorlm_plugin.hparams.data_args import PrepareArguments

# --------------------------------------------------------------------------- Foursquare fixtures

# user, venue, category id, category name, lat, lon, offset (min), UTC time
# fmt: off
FSQ_ROWS = [
    ("470", "49bbd6c0f964a520f4531fe3", "4bf58dd8d48988d127951735", "Arts & Crafts Store",
     "40.719810375488535", "-74.00258103213994", "-240", "Tue Apr 03 18:00:09 +0000 2012"),
    ("470", "4a43c0aef964a520c6a61fe3", "4bf58dd8d48988d1e0931735", "Café",
     "40.60679958140643", "-74.04416981025437", "-240", "Wed Apr 04 02:30:00 +0000 2012"),
    ("979", "4c5cc7b485a1e21e00d35711", "4bf58dd8d48988d103941735", "Home (private)",
     "35.6581", "139.7016", "540", "Tue Apr 03 18:17:18 +0000 2012"),
    ("979", "4bc7086715a7ef3bef9878da", "4bf58dd8d48988d104941735", "Medical Center",
     "35.6581", "139.7016", "540", "Tue Apr 03 20:00:00 +0000 2012"),
]
# fmt: on


def write_fsq(tmp_path: Path, rows=FSQ_ROWS, name: str = "dataset_TSMC2014_NYC.txt", raw: str = "") -> Path:
    """Write check-ins the way the dataset ships them: TSV, no header, Latin-1."""
    path = tmp_path / name
    text = "".join("\t".join(r) + "\r\n" for r in rows) + raw
    path.write_bytes(text.encode("latin-1"))
    return path


def fsq_row(**changes: str) -> tuple[str, ...]:
    names = ["user", "venue", "cat_id", "cat", "lat", "lon", "offset", "time"]
    row = dict(zip(names, FSQ_ROWS[0], strict=True)) | changes
    return tuple(row[n] for n in names)


# --------------------------------------------------------------------------- Foursquare: happy paths


def test_foursquare_columns_behavior_and_latin1(tmp_path):
    path = write_fsq(tmp_path)
    assert "Café".encode("latin-1") in path.read_bytes()  # really Latin-1 on disk, not UTF-8
    df, stats = load_foursquare_tsmc(path, place="venue")
    assert tuple(df.columns) == EVENT_COLUMNS
    assert df["behavior"].tolist() == ["Arts & Crafts Store", "Café", "Home (private)", "Medical Center"]
    assert df["user_id"].tolist() == ["470", "470", "979", "979"]
    assert df["place"].tolist()[:2] == ["49bbd6c0f964a520f4531fe3", "4a43c0aef964a520c6a61fe3"]
    assert stats.rows_in == 4 and stats.rows_out == 4
    assert stats.extra["place_mode"] == "venue"


def test_foursquare_local_time_adds_offset(tmp_path):
    df, _ = load_foursquare_tsmc(write_fsq(tmp_path))
    assert df["timestamp"].dt.tz is None  # naive local wall-clock time
    assert df["timestamp"].tolist() == [
        pd.Timestamp("2012-04-03 14:00:09"),  # 18:00:09 UTC - 4 h
        pd.Timestamp("2012-04-03 22:30:00"),  # 02:30 UTC on the 4th - 4 h: back to the previous day
        pd.Timestamp("2012-04-04 03:17:18"),  # 18:17:18 UTC + 9 h: next day in Tokyo
        pd.Timestamp("2012-04-04 05:00:00"),
    ]


def test_foursquare_grid_places(tmp_path):
    rows = [
        *FSQ_ROWS,
        fsq_row(user="5", lat="-0.001", lon="0.004"),
        fsq_row(user="5", lat="0.0", lon="-0.0", time=FSQ_ROWS[1][7]),
    ]
    df, stats = load_foursquare_tsmc(write_fsq(tmp_path, rows), place="grid")
    assert df["place"].tolist() == [
        "g40.72_-74.00",
        "g40.61_-74.04",
        "g0.00_0.00",
        "g0.00_0.00",
        "g35.66_139.70",
        "g35.66_139.70",
    ]
    assert stats.extra["place_mode"] == "grid"


def test_foursquare_skips_users_with_too_few_events_and_blank_lines(tmp_path):
    path = write_fsq(tmp_path, [*FSQ_ROWS, fsq_row(user="1")], raw="\r\n")
    df, stats = load_foursquare_tsmc(path, min_events_per_user=2)
    assert "1" not in set(df["user_id"])
    assert stats.users_skipped_too_few_events == 1 and stats.rows_out == 4
    df3, _ = load_foursquare_tsmc(path, min_events_per_user=1)
    assert len(df3) == 5


# --------------------------------------------------------------------------- Foursquare: errors


def test_foursquare_too_few_fields_names_file_and_line(tmp_path):
    path = write_fsq(tmp_path, [*FSQ_ROWS[:2], fsq_row()[:7], FSQ_ROWS[2]])
    with pytest.raises(BehaviorDataError) as err:
        load_foursquare_tsmc(path)
    msg = str(err.value)
    assert str(path) in msg and "line 3 has 7 tab-separated field(s), expected 8" in msg
    assert "Fix or delete that line" in msg


def test_foursquare_too_many_fields_names_line(tmp_path):
    path = write_fsq(tmp_path, [FSQ_ROWS[0], "", (*FSQ_ROWS[1], "extra")])  # blank line 2 still counted
    with pytest.raises(BehaviorDataError, match=r"line 3 has 9 tab-separated field\(s\), expected 8") as err:
        load_foursquare_tsmc(path)
    assert str(path) in str(err.value)


def test_foursquare_wrong_first_line_is_reported_as_line_1(tmp_path):
    path = write_fsq(tmp_path, [fsq_row()[:7], *FSQ_ROWS])
    with pytest.raises(BehaviorDataError, match=r"line 1 has 7 tab-separated field\(s\), expected 8"):
        load_foursquare_tsmc(path)


def test_foursquare_wide_first_line(tmp_path):
    path = write_fsq(tmp_path, [(*FSQ_ROWS[0], "x"), *FSQ_ROWS[1:]])
    with pytest.raises(BehaviorDataError, match=r"line 1 has 9 tab-separated field\(s\)"):
        load_foursquare_tsmc(path)


def test_foursquare_empty_field(tmp_path):
    path = write_fsq(tmp_path, [FSQ_ROWS[0], fsq_row(cat=" ")])
    with pytest.raises(BehaviorDataError, match=r"line 2: column 4 \(venue_category\) is empty") as err:
        load_foursquare_tsmc(path)
    assert str(path) in str(err.value)


def test_foursquare_unparsable_time(tmp_path):
    path = write_fsq(tmp_path, [*FSQ_ROWS, fsq_row(time="2012-04-03 18:00:09")])
    with pytest.raises(BehaviorDataError) as err:
        load_foursquare_tsmc(path)
    msg = str(err.value)
    assert str(path) in msg and "line 5" in msg and "'2012-04-03 18:00:09'" in msg


def test_foursquare_non_integer_offset(tmp_path):
    path = write_fsq(tmp_path, [FSQ_ROWS[0], fsq_row(offset="-240.5")])
    with pytest.raises(BehaviorDataError) as err:
        load_foursquare_tsmc(path)
    msg = str(err.value)
    assert str(path) in msg and "line 2" in msg and "'-240.5'" in msg and "whole number of minutes" in msg


def test_foursquare_bad_latitude_only_matters_for_grid(tmp_path):
    path = write_fsq(tmp_path, [*FSQ_ROWS, fsq_row(lat="north", time=FSQ_ROWS[1][7])])
    df, _ = load_foursquare_tsmc(path, min_events_per_user=1, place="venue")  # venue mode ignores coordinates
    assert len(df) == 5
    with pytest.raises(BehaviorDataError, match=r"line 5: column 5 \(latitude\) 'north'") as err:
        load_foursquare_tsmc(path, place="grid")
    assert str(path) in str(err.value)


def test_foursquare_rejects_unknown_place_mode_and_missing_file(tmp_path):
    with pytest.raises(BehaviorDataError, match="place='poi'"):
        load_foursquare_tsmc(write_fsq(tmp_path), place="poi")
    missing = tmp_path / "nope.txt"
    with pytest.raises(BehaviorDataError, match="file not found") as err:
        load_foursquare_tsmc(missing)
    assert str(missing) in str(err.value)


# --------------------------------------------------------------------------- App Usage fixtures

CATEGORIES = "1\tUtilities\n2\tSocial\n3\tGames\n"
APP2CAT = "10\t1\n20\t2\n30\t3\n"
# user timestamp base-station app traffic
TRACE = [
    "0 20160420100000 7560 10 120",  # kept
    "0 20160420100030 7561 10 80",  # 30 s after the kept one: merged
    "0 20160420100101 7560 10 10",  # 61 s after the kept one: kept
    "0 20160420100000 7560 20 5",  # same time, other app: kept
    "1 20160420100010 42 10 0",  # other user, same app, within the window: kept
    "1 20160420120000 42 99 7",  # app 99 is not in App2Category: dropped
    "1 20160420130000 43 30 7",
]


def write_app_usage(
    tmp_path: Path,
    trace=TRACE,
    app2cat: str = APP2CAT,
    categories: str = CATEGORIES,
    names=("App_usage_trace.txt", "App2Category.txt", "Categorys.txt"),
) -> tuple[Path, Path, Path]:
    paths = tuple(tmp_path / n for n in names)
    paths[0].write_text("".join(line + "\n" for line in trace))
    paths[1].write_text(app2cat)
    paths[2].write_text(categories, encoding="utf-8")
    return paths


def trace_at(*times: str, user: str = "7", app: str = "10") -> list[str]:
    return [f"{user} 201604201{t} 1 {app} 0" for t in times]


# --------------------------------------------------------------------------- App Usage: happy paths


def test_app_usage_maps_behavior_place_and_merges(tmp_path):
    df, stats = load_app_usage(*write_app_usage(tmp_path))
    assert tuple(df.columns) == EVENT_COLUMNS
    got = list(df.itertuples(index=False, name=None))
    assert got == [
        ("0", pd.Timestamp("2016-04-20 10:00:00"), "bs7560", "Utilities"),
        ("0", pd.Timestamp("2016-04-20 10:00:00"), "bs7560", "Social"),
        ("0", pd.Timestamp("2016-04-20 10:01:01"), "bs7560", "Utilities"),
        ("1", pd.Timestamp("2016-04-20 10:00:10"), "bs42", "Utilities"),
        ("1", pd.Timestamp("2016-04-20 13:00:00"), "bs43", "Games"),
    ]
    assert stats.extra["records_in"] == 7
    assert stats.extra["apps_unmapped_records"] == 1
    assert stats.extra["records_merged"] == 1
    assert stats.rows_in == 5 and stats.rows_out == 5


def test_app_usage_merge_is_anchored_on_the_kept_record(tmp_path):
    # 00:00 kept; 00:40 and 01:00 (exactly 60 s) merged into it; 01:20 is 80 s after the kept record: kept,
    # even though it is only 20 s after the previous record; 02:00 is 40 s after 01:20: merged.
    trace = trace_at("00000", "00040", "00100", "00120", "00200")
    df, stats = load_app_usage(*write_app_usage(tmp_path, trace), min_events_per_user=1)
    assert df["timestamp"].dt.strftime("%H:%M:%S").tolist() == ["10:00:00", "10:01:20"]
    assert stats.extra["records_merged"] == 3


def test_app_usage_merge_window_option(tmp_path):
    paths = write_app_usage(tmp_path, trace_at("00000", "00030", "00500"))
    df, stats = load_app_usage(*paths, merge_window=None)
    assert len(df) == 3 and stats.extra["records_merged"] == 0
    df, stats = load_app_usage(*paths, merge_window="10min", min_events_per_user=1)
    assert len(df) == 1 and stats.extra["records_merged"] == 2
    with pytest.raises(BehaviorDataError, match="merge_window='soon'"):
        load_app_usage(*paths, merge_window="soon")
    with pytest.raises(BehaviorDataError, match="negative"):
        load_app_usage(*paths, merge_window="-1min")


def test_app_usage_unsorted_trace(tmp_path):
    trace = trace_at("00101", "00030", "00000")  # merge happens in time order, not file order
    df, stats = load_app_usage(*write_app_usage(tmp_path, trace))
    assert df["timestamp"].dt.strftime("%H:%M:%S").tolist() == ["10:00:00", "10:01:01"]
    assert stats.extra["records_merged"] == 1


def test_app_usage_categories_reversed_with_headers(tmp_path):
    categories = "name\tid\nUtilities\t1\nSocial\t2\nGames\t3\n"
    app2cat = "app_id\tcategory_id\n" + APP2CAT
    df, _ = load_app_usage(*write_app_usage(tmp_path, app2cat=app2cat, categories=categories))
    assert sorted(set(df["behavior"])) == ["Games", "Social", "Utilities"]


def test_app_usage_space_separated_categories_with_spaces_in_names(tmp_path):
    categories = "1 Music & Audio\n2 Social networking\n3 Games\n"
    df, _ = load_app_usage(*write_app_usage(tmp_path, categories=categories))
    assert sorted(set(df["behavior"])) == ["Games", "Music & Audio", "Social networking"]


def test_app_usage_app_with_two_categories_uses_first(tmp_path):
    df, stats = load_app_usage(*write_app_usage(tmp_path, app2cat=APP2CAT + "10\t3\n20\t2\n"))
    assert "Games" not in set(df.loc[df["user_id"] == "0", "behavior"])
    assert stats.extra["apps_with_several_categories"] == 1


def test_app_usage_dir_is_case_insensitive(tmp_path):
    write_app_usage(tmp_path, names=("app_usage_trace.txt", "App2category.txt", "categorys.txt"))
    (tmp_path / "base_poi.txt").write_text("ignored\n")
    df, stats = load_app_usage_dir(tmp_path, merge_window=None)
    assert len(df) == 6 and stats.extra["records_merged"] == 0
    assert stats.source == str(tmp_path / "app_usage_trace.txt")


# --------------------------------------------------------------------------- App Usage: errors


def test_app_usage_dir_missing_file_lists_what_was_found(tmp_path):
    write_app_usage(tmp_path, names=("App_usage_trace.txt", "App2Category.txt", "notes.txt"))
    (tmp_path / "Categorys.rar").write_bytes(b"Rar!")
    with pytest.raises(BehaviorDataError) as err:
        load_app_usage_dir(tmp_path)
    msg = str(err.value)
    assert "no categorys.txt" in msg and "extract Categorys.rar" in msg
    assert "'App2Category.txt'" in msg and "'notes.txt'" in msg and str(tmp_path) in msg


def test_app_usage_dir_ambiguous_or_not_a_dir(tmp_path):
    write_app_usage(tmp_path)
    (tmp_path / "APP2CATEGORY.TXT").write_text(APP2CAT)
    if len({p.name.lower() for p in tmp_path.iterdir()}) == len(list(tmp_path.iterdir())):
        pytest.skip("case-insensitive file system")
    with pytest.raises(BehaviorDataError, match=r"several files match app2category\.txt"):
        load_app_usage_dir(tmp_path)
    with pytest.raises(BehaviorDataError, match="not a directory"):
        load_app_usage_dir(tmp_path / "Categorys.txt")


def test_app_usage_trace_wrong_field_count(tmp_path):
    trace = [*TRACE[:3], "0 20160420100000 7560 10", *TRACE[3:]]
    paths = write_app_usage(tmp_path, trace)
    with pytest.raises(BehaviorDataError) as err:
        load_app_usage(*paths)
    msg = str(err.value)
    assert str(paths[0]) in msg and "line 4 has 4 whitespace-separated field(s), expected 5" in msg


def test_app_usage_trace_too_many_fields(tmp_path):
    paths = write_app_usage(tmp_path, [*TRACE[:2], TRACE[2] + " 9"])
    with pytest.raises(BehaviorDataError, match=r"line 3 has 6 whitespace-separated field\(s\)") as err:
        load_app_usage(*paths)
    assert str(paths[0]) in str(err.value)


@pytest.mark.parametrize("bad", ["2016-04-20T10:00", "2016042010000", "20161320100000"])
def test_app_usage_trace_bad_timestamp(tmp_path, bad):
    paths = write_app_usage(tmp_path, [*TRACE[:5], f"1 {bad} 42 10 0"])
    with pytest.raises(BehaviorDataError) as err:
        load_app_usage(*paths)
    msg = str(err.value)
    assert str(paths[0]) in msg and "line 6" in msg and repr(bad) in msg


def test_app_usage_category_missing_from_categories(tmp_path):
    paths = write_app_usage(tmp_path, app2cat=APP2CAT + "40\t17\n")
    with pytest.raises(BehaviorDataError) as err:
        load_app_usage(*paths)
    msg = str(err.value)
    assert msg.startswith(f"{paths[2]}: category id 17")
    assert f"{paths[1]} line 4" in msg and "known ids: [1, 2, 3]" in msg


def test_app_usage_app2category_non_integer_category(tmp_path):
    paths = write_app_usage(tmp_path, app2cat=APP2CAT + "40\tgames\n")
    with pytest.raises(BehaviorDataError, match="line 4: category id 'games' is not an integer") as err:
        load_app_usage(*paths)
    assert str(paths[1]) in str(err.value)


def test_app_usage_categories_without_id_column(tmp_path):
    paths = write_app_usage(tmp_path, categories="id\tname\n1\tUtilities\nSocial\tSocial\n")
    with pytest.raises(BehaviorDataError, match=r"cannot tell which column .* line 3") as err:
        load_app_usage(*paths)
    assert str(paths[2]) in str(err.value)


def test_app_usage_categories_conflicting_names(tmp_path):
    paths = write_app_usage(tmp_path, categories=CATEGORIES + "2\tChat\n")
    with pytest.raises(BehaviorDataError, match=r"line 4: category id 2 is named both 'Social' and 'Chat'"):
        load_app_usage(*paths)


def test_app_usage_categories_wrong_field_count(tmp_path):
    paths = write_app_usage(tmp_path, categories=CATEGORIES + "4\tNews\textra\n")
    with pytest.raises(BehaviorDataError, match=r"line 4 has 3 field\(s\), expected 2") as err:
        load_app_usage(*paths)
    assert str(paths[2]) in str(err.value)


def test_app_usage_only_unmapped_apps_is_an_error(tmp_path):
    paths = write_app_usage(tmp_path, trace_at("00000", "00500", app="99"))
    with pytest.raises(BehaviorDataError, match="has no events"):
        load_app_usage(*paths)


# --------------------------------------------------------------------------- event-format registry

BUILTIN_FORMATS = {"app_usage", "csv", "foursquare", "json", "jsonl", "parquet", "tsv"}


@pytest.fixture
def registry(monkeypatch):
    """Isolate registrations made by a test: the built-ins come back afterwards."""
    monkeypatch.setattr(loaders, "_FORMATS", dict(loaders._FORMATS))
    monkeypatch.setattr(loaders, "_SUFFIXES", dict(loaders._SUFFIXES))
    return loaders


def load_mylog(path: Path, args) -> tuple[pd.DataFrame, EventStats]:
    """A custom format: ``user|ISO time|place|behavior`` lines."""
    raw = pd.DataFrame([line.split("|") for line in path.read_text().splitlines()], columns=list(EVENT_COLUMNS))
    return validate_events(raw, source=str(path), min_events_per_user=args.min_events_per_user)


def write_mylog(tmp_path: Path, name: str = "events.mylog") -> Path:
    path = tmp_path / name
    path.write_text("u1|2024-03-01 08:00|home|Reading news\nu1|2024-03-01 09:00|workplace|Payment\n")
    return path


def test_format_names_lists_builtins_sorted():
    names = format_names()
    assert set(names) == BUILTIN_FORMATS and list(names) == sorted(names)
    assert get_event_format("csv").suffixes == (".csv", ".csv.gz")
    assert get_event_format("foursquare").suffixes == ()  # .txt is too generic for --format auto
    assert all(get_event_format(n).description for n in names)


def test_get_event_format_unknown_lists_known_names():
    with pytest.raises(ValueError, match=r"unknown event format 'nope'; known formats: app_usage, csv, foursquare"):
        get_event_format("nope")


def test_register_refuses_duplicate_name_and_claimed_suffix(registry):
    with pytest.raises(ValueError, match=r"'csv' is already registered.*overwrite=True"):
        register_event_format(name="csv", loader=load_mylog)
    with pytest.raises(ValueError, match=r"'\.csv' by 'csv'"):
        register_event_format(name="mylog", loader=load_mylog, suffixes=(".mylog", ".CSV"))
    assert "mylog" not in format_names()  # a refused registration leaves nothing behind
    register_event_format(name="mylog", loader=load_mylog, suffixes=(".mylog",))
    with pytest.raises(ValueError, match=r"'\.mylog' by 'mylog'"):
        register_event_format(name="other", loader=load_mylog, suffixes=(".mylog",))


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"name": ""}, "event format name"),
        ({"name": "my-log"}, "event format name"),
        ({"name": "1log"}, "event format name"),
        ({"name": None}, "event format name"),
        ({"name": "auto"}, "reserved"),
        ({"loader": "load_mylog"}, "must be callable"),
        ({"suffixes": ".mylog"}, "must be a tuple"),
        ({"suffixes": ("mylog",)}, "must start with '.'"),
        ({"suffixes": (".",)}, "must start with '.'"),
        ({"suffixes": (".my log",)}, "must start with '.'"),
        ({"description": 3}, "description"),
    ],
)
def test_register_refuses_bad_inputs(registry, kw, match):
    with pytest.raises(ValueError, match=match):
        register_event_format(**({"name": "mylog", "loader": load_mylog} | kw))
    assert "mylog" not in format_names()


def test_register_is_keyword_only(registry):
    with pytest.raises(TypeError):
        register_event_format("mylog", load_mylog)  # type: ignore[misc]


def test_register_overwrite_replaces_and_takes_suffixes(registry):
    register_event_format(name="mylog", loader=load_mylog, suffixes=(".mylog", ".log"))
    register_event_format(name="mylog", loader=load_mylog, suffixes=(".mylog",), overwrite=True)
    assert get_event_format("mylog").suffixes == (".mylog",)
    register_event_format(name="other", loader=load_mylog, suffixes=(".log",))  # .log was released
    register_event_format(name="mycsv", loader=load_mylog, suffixes=(".csv",), overwrite=True)
    assert get_event_format("csv").suffixes == (".csv.gz",) and get_event_format("mycsv").suffixes == (".csv",)


def test_load_source_uses_custom_format_by_suffix_and_by_name(registry, tmp_path):
    register_event_format(name="mylog", loader=load_mylog, suffixes=(".mylog", ".my.gz"), description="pipes")
    path = write_mylog(tmp_path, "Events.MYLOG")  # suffixes match case-insensitively
    df, stats = load_source(PrepareArguments(events=str(path), min_events_per_user=1))
    assert df["behavior"].tolist() == ["Reading news", "Payment"]
    assert stats["source"] == str(path) and stats["rows_out"] == 2

    other = write_mylog(tmp_path, "events.txt")  # no suffix match: picked by name
    df, stats = load_source(PrepareArguments(events=str(other), format="mylog", min_events_per_user=1))
    assert len(df) == 2 and stats["source"] == str(other)

    double = write_mylog(tmp_path, "events.my.gz")  # multi-part suffixes match too
    assert len(load_source(PrepareArguments(events=str(double), min_events_per_user=1))[0]) == 2


def test_load_source_refuses_loader_without_event_stats(registry, tmp_path):
    register_event_format(name="mylog", loader=lambda path, args: (pd.DataFrame(), {}), suffixes=(".mylog",))
    with pytest.raises(TypeError, match="'mylog': loader must return"):
        load_source(PrepareArguments(events=str(write_mylog(tmp_path)), min_events_per_user=1))


def test_load_source_builtin_formats(tmp_path):
    path = tmp_path / "events.csv"
    pd.DataFrame(
        {"uid": ["a", "a"], "timestamp": ["2024-03-01 08:00", "2024-03-01 09:00"], "place": "home", "behavior": "x"}
    ).to_csv(path, index=False)
    df, stats = load_source(PrepareArguments(events=str(path), column_map="user_id=uid", min_events_per_user=1))
    assert df["user_id"].tolist() == ["a", "a"] and stats["rows_out"] == 2
    fsq = write_fsq(tmp_path)
    df, stats = load_source(PrepareArguments(events=str(fsq), format="foursquare", min_events_per_user=1))
    assert stats["place_mode"] == "grid" and len(df) == 4
    (tmp_path / "app").mkdir()
    write_app_usage(tmp_path / "app")
    df, stats = load_source(PrepareArguments(events=str(tmp_path / "app"), format="app_usage", min_events_per_user=1))
    assert stats["records_merged"] == 1


def test_load_source_auto_unknown_suffix_keeps_the_events_error(tmp_path):
    path = tmp_path / "events.txt"
    path.write_text("x\n")
    args = PrepareArguments(events=str(path))
    with pytest.raises(BehaviorDataError) as err:
        load_source(args)
    assert str(err.value) == (
        f"{path}: cannot tell the format from suffix '.txt'; "
        "use one of ['.csv', '.csv.gz', '.json', '.jsonl', '.jsonl.gz', '.parquet', '.tsv', '.tsv.gz'] "
        "or pass --format."
    )
    with pytest.raises(BehaviorDataError, match="file not found"):
        load_source(PrepareArguments(events=str(tmp_path / "missing.txt")))


def test_load_source_synthetic_filters_and_counts():
    args = PrepareArguments(synthetic=True, synthetic_users=12, synthetic_days=2, seed=5, min_events_per_user=15)
    df, stats = load_source(args)
    assert stats["source"] == "synthetic(users=12, days=2, seed=5)"
    assert stats["rows_out"] == len(df) == stats["rows_in"] - stats["events_skipped_too_few_events"]
    assert df.groupby("user_id", observed=True).size().min() >= 15
    assert stats["users_in"] - stats["users_skipped_too_few_events"] == df["user_id"].nunique()


def test_loaders_package_imports_neither_torch_nor_transformers():
    code = (
        "import sys, behaviorlm_plugin.data.loaders; "
        "heavy = {'torch', 'transformers'} & set(sys.modules); assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
