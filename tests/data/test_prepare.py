import json

import pandas as pd
import pytest
from conftest import small_prepare_args

from behaviorlm_plugin.cli import main
from behaviorlm_plugin.data.prepare import ALL_SPLITS, prepare
from behaviorlm_plugin.data.registry import RegistrationError, read_dataset_info
from behaviorlm_plugin.extras.fileio import read_jsonl


def test_files_entries_and_alignment(prepared):
    d, stats = prepared
    info = read_dataset_info(d)
    for split in ALL_SPLITS:
        entry = info[f"beh_{split}"]
        assert (d / entry["file_name"]).exists()
    for split in ("train_all", "train_anchor", "train_tail", "val", "test", "test_balanced"):
        recs, metas = read_jsonl(d / "beh" / f"{split}.jsonl"), read_jsonl(d / "beh" / f"{split}.meta.jsonl")
        assert len(recs) == len(metas) == stats["splits"]["samples_written"][split]
        for r, m in zip(recs, metas, strict=True):
            assert r["id"] == m["id"] and r["output"] == m["label"]
            assert r["output"] in m["candidates"] and ", ".join(m["candidates"]) in r["instruction"]
            assert len(m["candidates"]) == len(stats["behaviors"])
    anchor = read_jsonl(d / "beh" / "train_anchor.meta.jsonl")
    tail = read_jsonl(d / "beh" / "train_tail.meta.jsonl")
    assert all(m["anchor_tail"] == "anchor" for m in anchor) and all(m["anchor_tail"] == "tail" for m in tail)
    assert len(anchor) + len(tail) == stats["splits"]["samples_written"]["train_all"]


def test_stats_contents(prepared):
    _, stats = prepared
    s = stats["splits"]
    assert s["user_overlap"] == {"train_val": 0, "train_test": 0, "val_test": 0}
    assert sum(s["users"].values()) == 60
    assert stats["synthetic"]["tv_distance_to_paper"] <= 0.08  # small sample; the default size is checked below
    assert 0.9 < stats["synthetic"]["anchor_share_all_events"] < 1
    assert set(stats["baselines"]) >= {"majority_accuracy", "hour_place_accuracy"}
    bal = s["test_balanced_per_behavior"]
    assert max(bal.values()) <= 5 and sum(bal.values()) == s["samples_written"]["test_balanced"]
    assert stats["aux"]["used_in_mix"] == int(0.05 * s["samples_written"]["train_anchor"] + 0.5)
    assert stats["aux"]["mix_size"] == s["samples_written"]["train_anchor"] + stats["aux"]["used_in_mix"]
    assert stats["prompt_lengths"]["train_all"]["p50"] > 100


def test_mix_anchor_cap_keeps_ratio_exact(tmp_path):
    stats = prepare(small_prepare_args(tmp_path, mix_anchor_samples=40, aux_ratio=0.1))
    aux = stats["aux"]
    assert aux["mix_anchor_samples"] == 40 and aux["used_in_mix"] == 4 and aux["mix_size"] == 44
    assert stats["splits"]["samples_written"]["train_all"] == 400  # selection pool untouched
    assert len(read_jsonl(tmp_path / "beh" / "atuning_mix.jsonl")) == 44


def test_val_and_test_users_disjoint_from_train(prepared):
    d, _ = prepared
    users = {
        s: {m["user_id"] for m in read_jsonl(d / "beh" / f"{s}.meta.jsonl")}
        for s in ("train_all", "val", "test", "test_balanced")
    }
    assert not users["train_all"] & (users["val"] | users["test"] | users["test_balanced"])
    assert not users["val"] & users["test"]


def test_same_seed_same_data(tmp_path, prepared):
    d, _ = prepared
    prepare(small_prepare_args(tmp_path))
    for split in ("train_all", "test_balanced", "atuning_mix"):
        assert (tmp_path / "beh" / f"{split}.jsonl").read_bytes() == (d / "beh" / f"{split}.jsonl").read_bytes()


def test_clash_refused_before_any_write_and_other_entries_survive(tmp_path):
    (tmp_path / "dataset_info.json").write_text(
        json.dumps({"beh_val": {"file_name": "mine.json"}, "x": {"file_name": "y"}})
    )
    with pytest.raises(RegistrationError, match="--overwrite"):
        prepare(small_prepare_args(tmp_path))
    assert not (tmp_path / "beh").exists()
    prepare(small_prepare_args(tmp_path, overwrite=True))
    info = read_dataset_info(tmp_path)
    assert info["x"] == {"file_name": "y"} and info["beh_val"]["file_name"] == "beh/val.jsonl"


def test_prepare_from_csv_with_column_map(tmp_path):
    from behaviorlm_plugin.data.simulator import SimulatorConfig, simulate_events

    ev = simulate_events(SimulatorConfig(num_users=30, num_days=10, seed=4))
    ev = ev.rename(columns={"behavior": "intent", "user_id": "uid"})
    path = tmp_path / "events.csv"
    ev.to_csv(path, index=False)
    stats = prepare(
        small_prepare_args(
            tmp_path / "out", synthetic=False, events=str(path), column_map="behavior=intent,user_id=uid", history_len=5
        )
    )
    assert stats["source"]["source"] == str(path) and stats["splits"]["samples_written"]["train_all"] > 0
    assert "synthetic" not in stats


def test_too_short_histories_are_a_clear_error(tmp_path):
    df = pd.DataFrame(
        {
            "user_id": ["a"] * 3 + ["b"] * 3,
            "timestamp": pd.date_range("2024-01-01", periods=6, freq="h"),
            "place": "home",
            "behavior": "x",
        }
    )
    path = tmp_path / "ev.csv"
    df.to_csv(path, index=False)
    with pytest.raises(Exception, match="no user has at least 21 events"):
        prepare(small_prepare_args(tmp_path / "o", synthetic=False, events=str(path)))


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"synthetic": False}, "exactly one source"),
        ({"split_ratios": "0.5,0.5"}, "summing to 1"),
        ({"name": "a b"}, "--name"),
        ({"aux_ratio": -1.0}, "aux_ratio"),
        ({"column_map": "behavior"}, "column_map"),
        ({"history_len": 0}, "history_len"),
    ],
)
def test_argument_checks(tmp_path, kw, message):
    with pytest.raises(ValueError, match=message):
        small_prepare_args(tmp_path, **kw)


def test_cli_prepare_prints_summary_and_errors_cleanly(tmp_path, capsys):
    rc = main(
        [
            "prepare",
            "--synthetic",
            "--synthetic-users",
            "40",
            "--synthetic-days",
            "8",
            "--history-len",
            "5",
            "--dataset-dir",
            str(tmp_path),
            "--name",
            "cli",
            "--max-train-samples",
            "50",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "TV distance" in out and "registered in" in out
    assert "cli_train_all" in read_dataset_info(tmp_path)
    rc = main(["prepare", "--events", str(tmp_path / "missing.csv"), "--dataset-dir", str(tmp_path)])
    assert rc == 1 and "missing.csv: file not found" in capsys.readouterr().err


def test_cli_simulate_and_register_aux(tmp_path, capsys):
    out = tmp_path / "ev.parquet"
    assert main(["simulate", "--out", str(out), "--users", "20", "--days", "3"]) == 0
    df = pd.read_parquet(out)
    assert list(df.columns) == ["user_id", "timestamp", "place", "behavior"] and len(df) > 100
    conv = tmp_path / "mine.json"
    conv.write_text(
        json.dumps([{"instruction": "Hi", "output": "Hello"}, {"instruction": "Long " * 900, "output": "x"}])
    )
    assert (
        main(["register-aux", str(conv), "--dataset-dir", str(tmp_path), "--name", "mine", "--max-tokens", "100"]) == 0
    )
    assert '"kept": 1' in capsys.readouterr().out
    assert read_dataset_info(tmp_path)["mine"]["formatting"] == "sharegpt"
