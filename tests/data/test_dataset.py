"""The one typed reader of a prepared dataset: stats.json is parsed once, and a bad one fails once, clearly."""

import json

import pytest

from behaviorlm_plugin.data.dataset import DatasetError, DatasetStats, PreparedDataset


def test_reads_the_prepared_stats(prepared):
    d, stats = prepared
    data = PreparedDataset(d, "beh")
    s = data.stats
    assert s.behavior_list == list(stats["behaviors"])
    assert set(s.anchor_tail.values()) <= {"anchor", "tail"} and "anchor" in s.anchor_tail.values()
    assert s.metric_thresholds == (0.01, 0.05)
    assert s.samples_written["train_all"] == stats["splits"]["samples_written"]["train_all"]
    recs, metas = data.load("test_balanced", max_per_class=1, seed=0)
    assert len(recs) == len(metas) and len({m["label"] for m in metas}) == len(metas)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "has no 'behaviors' section"),
        ('{"behaviors": {"a": {"train_count": 1}}}', "malformed stats.json"),
        (
            '{"behaviors": {"a": {"train_count": "x", "train_frequency": 1, "anchor_tail": "anchor", '
            '"head_medium_tail": "head"}}, "categories": {"thresholds": {}}, "splits": {"samples_written": {}}}',
            "malformed stats.json",
        ),
        ('{"behaviors": {}}', "malformed stats.json"),
    ],
)
def test_a_malformed_stats_file_gives_one_clear_error(tmp_path, content, message):
    path = tmp_path / "stats.json"
    path.write_text(content)
    with pytest.raises(DatasetError, match=message) as err:
        DatasetStats.read(path)
    assert str(path) in str(err.value) and "prepare" in str(err.value)


def test_missing_stats_names_the_fix(tmp_path):
    with pytest.raises(DatasetError, match="run `behaviorlm prepare --name x` first"):
        _ = PreparedDataset(tmp_path, "x").stats
    with pytest.raises(DatasetError, match="not found"):
        DatasetStats.read(tmp_path / "nope.json")


def test_evaluate_cli_reports_a_bad_stats_file(tmp_path, capsys):
    from behaviorlm_plugin.cli import main

    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"label": "a", "prediction": "a"}) + "\n")
    (tmp_path / "stats.json").write_text("[]")
    assert main(["evaluate", "--preds", str(preds), "--stats", str(tmp_path / "stats.json")]) == 1
    assert "has no 'behaviors' section" in capsys.readouterr().err
