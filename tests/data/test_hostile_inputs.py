"""A hostile but fair new user: every case is a clean one-line error or a correct result, never a traceback.

Grouped by what went wrong before: data loss, crashes, silent acceptance and unclear messages.
Concurrency and kills are in test_transactions.py.
"""

from __future__ import annotations

import gzip
import json
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from behaviorlm_plugin.cli import main
from behaviorlm_plugin.data.events import BehaviorDataError, load_events
from behaviorlm_plugin.data.prepare import ensure_prepared, prepare
from behaviorlm_plugin.data.registry import RegistrationError, make_entry, read_dataset_info, register_datasets
from behaviorlm_plugin.hparams.data_args import PrepareArguments

BEHAVIORS = ["Gaming", "Ordering takeout", "Hailing a taxi", "Reading"]


def events_frame(seed: int = 0, users: int = 12, per_user: int = 25, behaviors=BEHAVIORS) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        t = pd.Timestamp("2024-03-04 07:00")
        for _ in range(per_user):
            t += pd.Timedelta(minutes=int(rng.integers(30, 200)))
            rows.append((f"u{u}", t, rng.choice(["home", "work"]), rng.choice(behaviors)))
    return pd.DataFrame(rows, columns=["user_id", "timestamp", "place", "behavior"])


def write_csv(path: Path, df: pd.DataFrame | None = None, **kw) -> Path:
    (events_frame(**kw) if df is None else df).to_csv(path, index=False)
    return path


def prep_argv(events: Path, data: Path) -> list[str]:
    return ["prepare", "--events", str(events), "--dataset-dir", str(data), "--name", "t", "--balanced-per-class", "2"]


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.err


# ----------------------------------------------------------------------------- data loss
def test_same_name_rerun_without_overwrite_is_refused_and_keeps_the_data(tmp_path, capsys):
    data = tmp_path / "data"
    assert run_cli(prep_argv(write_csv(tmp_path / "a.csv", seed=1), data), capsys)[0] == 0
    before = (data / "t" / "train_all.jsonl").read_bytes()
    code, err = run_cli(prep_argv(write_csv(tmp_path / "b.csv", seed=2), data), capsys)
    assert code == 1 and "already prepared and registered" in err and "--overwrite" in err
    assert (data / "t" / "train_all.jsonl").read_bytes() == before


def test_overwrite_unregisters_btuning_sets_built_from_the_old_data(tmp_path, capsys):
    data = tmp_path / "data"
    run_cli(prep_argv(write_csv(tmp_path / "a.csv", seed=1), data), capsys)
    (data / "t" / "btuning_x.jsonl").write_text("{}\n")
    register_datasets(dataset_dir=data, entries={"t_btuning_x": make_entry("t/btuning_x.jsonl", "alpaca")})
    assert run_cli([*prep_argv(write_csv(tmp_path / "b.csv", seed=2), data), "--overwrite"], capsys)[0] == 0
    info = read_dataset_info(data)
    assert "t_btuning_x" not in info and "t_train_all" in info


def test_read_only_registry_check_does_not_depend_on_root(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    info = data / "dataset_info.json"
    info.write_text("{}")
    info.chmod(0o444)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == info else real_access(p, mode))
    args = PrepareArguments(events=str(write_csv(tmp_path / "a.csv")), dataset_dir=str(data), name="t")
    with pytest.raises(RegistrationError, match="registry is read-only"):
        prepare(args)
    assert stat.S_IMODE(info.stat().st_mode) == 0o444 and not (data / "t").exists()


def test_a_write_keeps_the_registry_mode(tmp_path):
    (tmp_path / "x.jsonl").write_text("{}\n")
    info = tmp_path / "dataset_info.json"
    info.write_text("{}")
    info.chmod(0o640)
    register_datasets(dataset_dir=tmp_path, entries={"x": make_entry("x.jsonl", "alpaca")})
    assert stat.S_IMODE(info.stat().st_mode) == 0o640


def test_pipeline_never_silently_replaces_a_hand_prepared_dataset(tmp_path):
    events = write_csv(tmp_path / "a.csv")
    prepare(PrepareArguments(events=str(events), dataset_dir=str(tmp_path), name="t", seed=1))
    other = PrepareArguments(events=str(events), dataset_dir=str(tmp_path), name="t", seed=2)
    with pytest.raises(RegistrationError, match=r"prepared with other arguments \(seed\).*prepare\.overwrite"):
        ensure_prepared(other, log=lambda s: None)
    same = PrepareArguments(events=str(events), dataset_dir=str(tmp_path), name="t", seed=1, overwrite=True)
    assert ensure_prepared(same, log=lambda s: None) is True  # same arguments: reused, whatever overwrite says


# ----------------------------------------------------------------------------- crashes
def test_mixed_utc_offsets_keep_each_events_local_time(tmp_path):
    df = events_frame()
    df["timestamp"] = [
        (t.strftime("%Y-%m-%dT%H:%M:%S") + ("+09:00" if i % 2 else "-05:00")) for i, t in enumerate(df["timestamp"])
    ]
    out, _ = load_events(write_csv(tmp_path / "e.csv", df), min_events_per_user=1)
    assert sorted(out["timestamp"].dt.hour) == sorted(events_frame()["timestamp"].dt.hour)
    utc, _ = load_events(tmp_path / "e.csv", timezone="UTC", min_events_per_user=1)
    assert sorted(utc["timestamp"].dt.hour) != sorted(out["timestamp"].dt.hour)  # one zone: shifted hours


def test_read_only_dataset_folder_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    data = tmp_path / "ro"
    data.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == data else real_access(p, mode))
    code, err = run_cli(prep_argv(tmp_path / "missing-but-not-read.csv", data), capsys)
    assert code == 1 and "cannot write there" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tokenizer", "/no/such/tokenizer"], "--tokenizer /no/such/tokenizer: no such folder"),
        (["--tokenizer", "someorg/some-model"], "offline mode is on"),
    ],
)
def test_bad_tokenizer_fails_before_any_work(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, err = run_cli([*prep_argv(write_csv(tmp_path / "a.csv"), tmp_path / "d"), *argv], capsys)
    assert code == 1 and message in err and not (tmp_path / "d" / "t").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["predict", "--model", "/no/model", "--data", "{split}", "--out", "{tmp}/p.jsonl"],
        ["evaluate", "--model", "/no/model", "--data", "{split}", "--stats", "{stats}"],
        ["select", "--model", "/no/model", "--dataset-dir", "{data}", "--name", "beh", "--strategy", "uniform"],
        ["select", "--model", "{model}", "--adapter", "/no/adapter", "--dataset-dir", "{data}", "--name", "beh"],
    ],
)
def test_missing_model_or_adapter_is_a_clean_error(prepared, tiny_model, tmp_path, capsys, argv):
    d, _ = prepared
    subs = {
        "split": str(d / "beh" / "test_balanced.jsonl"),
        "stats": str(d / "beh" / "stats.json"),
        "data": str(d),
        "model": str(tiny_model),
        "tmp": str(tmp_path),
    }
    code, err = run_cli([a.format(**subs) for a in argv], capsys)
    assert code == 1 and ("/no/model: no such folder" in err or "/no/adapter: no such folder" in err)


def test_evaluate_rows_without_label_name_the_row(prepared, tmp_path, capsys):
    d, _ = prepared
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"label": "Gaming", "prediction": "Gaming"}) + "\n" + json.dumps({"x": 1}) + "\n")
    code, err = run_cli(["evaluate", "--preds", str(preds), "--stats", str(d / "beh" / "stats.json")], capsys)
    assert code == 1 and "row 2 has no label, prediction" in err


# ----------------------------------------------------------------------------- silent acceptance
@pytest.mark.parametrize(("scale", "unit"), [(1, "s"), (1000, "ms")])
def test_epoch_seconds_and_milliseconds_are_told_apart(tmp_path, scale, unit):
    df = events_frame()
    expected = df["timestamp"].copy()
    df["timestamp"] = (df["timestamp"].astype("int64") // 10**9) * scale
    out, _ = load_events(write_csv(tmp_path / "e.csv", df), min_events_per_user=1)
    assert (out["timestamp"].sort_values().to_numpy() == expected.sort_values().to_numpy()).all()


def test_implausible_epoch_numbers_are_refused_naming_the_unit_flag(tmp_path):
    df = events_frame()
    df["timestamp"] = np.arange(len(df))
    with pytest.raises(BehaviorDataError, match="--timestamp-unit"):
        load_events(write_csv(tmp_path / "e.csv", df))


@pytest.mark.parametrize(("label", "what"), [("Reading, news", "a comma"), ("Reading\nnews", "a line break")])
def test_behavior_names_that_break_the_candidate_list_are_refused(tmp_path, label, what):
    df = events_frame()
    df.loc[7, "behavior"] = label
    with pytest.raises(BehaviorDataError, match=rf"row 7 \(line \d+\) column 'behavior'.*contains {what}"):
        load_events(write_csv(tmp_path / "e.csv", df))


def test_a_single_behavior_task_is_refused(tmp_path, capsys):
    events = write_csv(tmp_path / "e.csv", behaviors=["Gaming"])
    code, err = run_cli(prep_argv(events, tmp_path / "d"), capsys)
    assert code == 1 and "needs at least two" in err


def test_an_event_far_outside_the_logs_span_is_counted(tmp_path, caplog):
    df = events_frame()
    df.loc[5, "timestamp"] = pd.Timestamp("2099-01-01 10:00")
    _, stats = load_events(write_csv(tmp_path / "e.csv", df), min_events_per_user=1)
    assert stats.to_dict()["timestamps_far_from_span"] == 1
    assert "far outside the log's span" in caplog.text


def test_aux_ratio_help_and_check_agree(capsys):
    code, err = run_cli(["prepare", "--synthetic", "--aux-ratio", "11"], capsys)
    assert code == 1 and "[0, 10]" in err
    assert PrepareArguments(synthetic=True, aux_ratio=1.5).aux_ratio == 1.5  # allowed, and the help says so
    assert "[0, 10]" in PrepareArguments.__dataclass_fields__["aux_ratio"].metadata["help"]


# ----------------------------------------------------------------------------- unclear messages
def test_broken_jsonl_names_its_line(tmp_path):
    path = tmp_path / "e.jsonl"
    lines = [json.dumps({**r, "timestamp": str(r["timestamp"])}) for r in events_frame().to_dict("records")]
    lines[12] = '{"user_id": "u0", "timestamp": '
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(BehaviorDataError, match=r"line 13 is not valid JSON"):
        load_events(path)


def test_line_numbers_count_newlines_inside_quoted_fields(tmp_path):
    df = events_frame()
    df["place"] = df["place"].astype(object)
    df.loc[2, "place"] = "home\nsecond line"
    df.loc[6, "timestamp"] = "not a time"
    with pytest.raises(BehaviorDataError, match=r"row 6 \(line 9\)"):  # header + 6 rows + 1 extra physical line
        load_events(write_csv(tmp_path / "e.csv", df))


@pytest.mark.parametrize("label", ["None", "NA", "null"])
def test_behaviors_named_like_missing_values_are_labels(tmp_path, label):
    df = events_frame()
    df.loc[df.index % 5 == 0, "behavior"] = label
    out, _ = load_events(write_csv(tmp_path / "e.csv", df), min_events_per_user=1)
    assert label in set(out["behavior"])


def test_an_iso_looking_but_impossible_date_is_explained(tmp_path):
    df = events_frame()
    df["timestamp"] = df["timestamp"].astype(str)
    df.loc[3, "timestamp"] = "2024-13-01 08:00:00"
    with pytest.raises(BehaviorDataError, match="looks like ISO 8601 but is not a valid date") as err:
        load_events(write_csv(tmp_path / "e.csv", df))
    assert "Use ISO 8601" not in str(err.value)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--prompt-formats", ","], "needs at least one format name"),
        (["--timezone", "Mars/Olympus"], "not an IANA zone"),
        (["--timestamp-unit", "days"], "must be one of auto, s, ms, us, ns"),
    ],
)
def test_bad_flags_say_what_is_wrong(tmp_path, capsys, argv, message):
    code, err = run_cli(["prepare", "--synthetic", *argv], capsys)
    assert code == 1 and message in err


def test_header_only_csv_says_there_are_no_events(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("user_id,timestamp,place,behavior\n")
    with pytest.raises(BehaviorDataError, match="has no events"):
        load_events(path)


# ----------------------------------------------------------------------------- gaps
def test_none_is_accepted_for_optional_caps(capsys):
    from behaviorlm_plugin.hparams.parser import parse_cli

    args, _ = parse_cli(PrepareArguments, ["--synthetic", "--max-train-samples", "None"], prog="t")
    assert args.max_train_samples is None


def test_gzipped_csv_is_detected(tmp_path):
    path = tmp_path / "e.csv.gz"
    with gzip.open(path, "wt") as fh:
        events_frame().to_csv(fh, index=False)
    out, _ = load_events(path, min_events_per_user=1)
    assert len(out) == len(events_frame())


def test_run_until_bogus_creates_nothing(tmp_path, capsys):
    pipe = Path(__file__).resolve().parents[2] / "yaml_recipes" / "smollm2-135m-cpu" / "pipeline.yaml"
    with pytest.raises(SystemExit):
        main(["run", str(pipe), "--until", "bogus", "--set", f"run_dir={tmp_path / 'run'}"])
    assert "invalid choice" in capsys.readouterr().err and not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- property
cells = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.integers(-(10**19), 10**19),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["2024-03-01 08:00", "2024-03-01T08:00+02:00", "NA", "", " ", "a,b", "x\ny", "1709280000"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.fixed_dictionaries({c: cells for c in ("user_id", "timestamp", "place", "behavior")}), max_size=30
    ),
    drop=st.sampled_from([None, "place", "behavior"]),
)
def test_random_malformed_tables_give_a_clean_error_or_valid_events(tmp_path, rows, drop):
    df = pd.DataFrame(rows, columns=["user_id", "timestamp", "place", "behavior"])
    if drop:
        df = df.drop(columns=[drop])
    path = tmp_path / "e.jsonl"
    path.write_text("".join(json.dumps(r, default=str) + "\n" for r in df.to_dict("records")))
    try:
        out, stats = load_events(path, min_events_per_user=1)
    except BehaviorDataError as err:
        assert str(path) in str(err)
        return
    assert list(out.columns) == ["user_id", "timestamp", "place", "behavior"] and len(out) == stats.rows_out
    assert out["timestamp"].notna().all() and (out["behavior"].str.strip() != "").all()


# ----------------------------------------------------------------------------- found by the second probe
@pytest.mark.parametrize("kind", ["folder", "file", "events-inside"])
def test_prepare_never_touches_what_the_user_has_at_dir_name(tmp_path, capsys, kind):
    data = tmp_path / "d"
    target = data / "t"
    data.mkdir()
    if kind == "file":
        target.write_text("mine")
    else:
        target.mkdir()
        (target / "notes.txt").write_text("precious")
    events = write_csv((target / "e.csv") if kind == "events-inside" else (tmp_path / "e.csv"))
    for extra in ([], ["--overwrite"]):
        code, err = run_cli([*prep_argv(events, data), *extra], capsys)
        assert code == 1 and "is not a dataset `behaviorlm prepare` made" in err
    assert (target.read_text() == "mine") if kind == "file" else (target / "notes.txt").read_text() == "precious"
    assert events.exists()


def test_select_output_name_cannot_overwrite_a_prepared_split(prepared, tiny_model, capsys):
    d, _ = prepared
    before = (d / "beh" / "test.jsonl").read_bytes()
    argv = ["select", "--model", str(tiny_model), "--dataset-dir", str(d), "--name", "beh", "--strategy", "uniform"]
    code, err = run_cli([*argv, "--output-name", "beh_test"], capsys)
    assert code == 1 and "would overwrite the prepared 'test' split" in err
    code, err = run_cli([*argv, "--output-name", "bad name"], capsys)
    assert code == 1 and "--output-name must be" in err
    assert (d / "beh" / "test.jsonl").read_bytes() == before


def test_register_aux_never_replaces_a_prepared_set_or_another_file(prepared, tmp_path, capsys):
    d, _ = prepared
    chats = tmp_path / "c.json"
    chats.write_text(json.dumps([{"instruction": "hi", "output": "hello"}]))
    code, err = run_cli(["register-aux", str(chats), "--dataset-dir", str(d), "--name", "beh"], capsys)
    assert code == 1 and "is a prepared behavior dataset" in err
    assert run_cli(["register-aux", str(chats), "--dataset-dir", str(tmp_path), "--name", "chat"], capsys)[0] == 0
    code, err = run_cli(["register-aux", str(chats), "--dataset-dir", str(tmp_path), "--name", "chat"], capsys)
    assert code == 1 and "--overwrite" in err
    for bad in ("../evil", "a b", "x" * 101):
        code, err = run_cli(["register-aux", str(chats), "--dataset-dir", str(tmp_path), "--name", bad], capsys)
        assert code == 1 and "--name must be" in err
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    code, err = run_cli(["register-aux", str(empty), "--dataset-dir", str(tmp_path), "--name", "e"], capsys)
    assert code == 1 and "empty.json" in err


@pytest.mark.parametrize(
    ("line", "message"),
    [("[1, 2, 3]", "line 4 is not a JSON object"), ('{"user_id": "u0", "behavior": ["a", "b"]}', "holds a list")],
)
def test_jsonl_lines_of_the_wrong_shape_are_clean_errors(tmp_path, line, message):
    lines = [json.dumps({**r, "timestamp": str(r["timestamp"])}) for r in events_frame().to_dict("records")]
    if "behavior" in line:
        lines[3] = json.dumps({**json.loads(lines[3]), "behavior": ["a", "b"]})
    else:
        lines[3] = line
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(BehaviorDataError, match=message):
        load_events(path)


def test_more_clean_errors(tmp_path, capsys, prepared):
    d, _ = prepared
    assert "must be 1-100 letters" in run_cli(["prepare", "--synthetic", "--name", "x" * 300], capsys)[1]
    assert "--seed must be >= 0" in run_cli(["prepare", "--synthetic", "--seed", "-5"], capsys)[1]
    (tmp_path / "f").write_text("")
    err = run_cli(
        [
            "evaluate",
            "--preds",
            str(tmp_path / "f"),
            "--stats",
            str(d / "beh" / "stats.json"),
            "--out-dir",
            str(tmp_path / "f"),
        ],
        capsys,
    )[1]
    assert "is a file" in err
    assert "is a file, not a folder" in run_cli(prep_argv(write_csv(tmp_path / "e.csv"), tmp_path / "f"), capsys)[1]


def test_an_explicit_epoch_unit_is_checked_too(tmp_path):
    df = events_frame()
    df["timestamp"] = df["timestamp"].astype("int64") // 10**9
    with pytest.raises(BehaviorDataError, match="they look like --timestamp-unit s"):
        load_events(write_csv(tmp_path / "e.csv", df), timestamp_unit="ms")


def test_a_place_that_would_break_the_history_text_is_refused(tmp_path):
    df = events_frame()
    df["place"] = df["place"].astype(object)
    df.loc[4, "place"] = "home, sweet home"
    with pytest.raises(BehaviorDataError, match=r"column 'place'.*contains a comma"):
        load_events(write_csv(tmp_path / "e.csv", df))


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"id": 1, "label": "Gaming", "prediction": "Gaming"}] * 2, "repeats id 1"),
        ([{"id": 1, "label": "Skydiving", "prediction": "Gaming"}], "not a behavior of"),
        ([{"id": 1, "label": "Gaming", "prediction": "Gaming", "ranked": [{"behavior": "Reading"}]}], "top-ranked"),
    ],
)
def test_evaluate_refuses_predictions_that_would_mislead(prepared, tmp_path, capsys, rows, message):
    d, stats = prepared
    behaviors = list(stats["behaviors"])
    text = json.dumps(rows).replace("Gaming", behaviors[0]).replace("Reading", behaviors[1])
    preds = tmp_path / "p.jsonl"
    preds.write_text("".join(json.dumps(r) + "\n" for r in json.loads(text)))
    code, err = run_cli(["evaluate", "--preds", str(preds), "--stats", str(d / "beh" / "stats.json")], capsys)
    assert code == 1 and message in err


def test_a_duplicate_yaml_key_is_refused(tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text("synthetic: true\nseed: 1\nseed: 2\n")
    code, err = run_cli(["prepare", str(path)], capsys)
    assert code == 1 and "key 'seed' is given twice" in err


def test_an_edited_events_file_is_not_reused_silently(tmp_path):
    events = write_csv(tmp_path / "e.csv", seed=1)
    args = PrepareArguments(events=str(events), dataset_dir=str(tmp_path / "d"), name="t")
    prepare(args)
    assert ensure_prepared(args, log=lambda s: None) is True
    write_csv(events, seed=2)
    with pytest.raises(RegistrationError, match="the content of"):
        ensure_prepared(args, log=lambda s: None)


def test_a_travellers_events_keep_the_order_they_happened_in(tmp_path):
    # 00:00 UTC in Tokyo, then 02:00 UTC in New York (21:00 local, the day before), then 03:00 UTC in Tokyo.
    rows = [
        ("u0", "2024-03-02T09:00:00+09:00", "home", "Gaming"),
        ("u0", "2024-03-01T21:00:00-05:00", "work", "Reading"),
        ("u0", "2024-03-02T12:00:00+09:00", "gym", "Gaming"),
    ]
    df = pd.DataFrame(rows, columns=["user_id", "timestamp", "place", "behavior"])
    out, _ = load_events(write_csv(tmp_path / "e.csv", df), min_events_per_user=1)
    assert list(out["place"]) == ["home", "work", "gym"]  # the order they happened in
    assert list(out["timestamp"].dt.hour) == [9, 21, 12]  # each with the hour the user lived it


def test_a_synthetic_dataset_without_oracle_files_is_rebuilt_not_reused(tmp_path):
    from small_configs import small_synthetic_prepare

    args = PrepareArguments(**small_synthetic_prepare(tmp_path))
    prepare(args)
    folder = tmp_path / args.name
    before = (folder / "test.jsonl").read_bytes()
    (folder / "test.oracle.npz").unlink()  # as prepared before the oracle existed
    logs: list[str] = []
    assert ensure_prepared(args, log=logs.append) is False
    assert (folder / "test.oracle.npz").is_file() and (folder / "test.jsonl").read_bytes() == before
    assert any("no simulator oracle files" in line for line in logs)
    assert ensure_prepared(args, log=lambda s: None) is True
