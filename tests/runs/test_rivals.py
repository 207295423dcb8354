"""The rivals that isolate what BehaviorLM adds: class-balanced fine-tuning (the balancing) and one-stage fine-tuning
on exactly its data (the curriculum), on the tiny model; and the labels each row saw, selection's reads included."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from small_configs import small_synthetic_prepare

from behaviorlm_plugin.data.dataset import PreparedDataset
from behaviorlm_plugin.extras.fileio import read_jsonl
from behaviorlm_plugin.runs import steps
from behaviorlm_plugin.runs.bench.runner import BenchRunner, load_suite

VARIANTS = [
    {"name": "BehaviorLM", "kind": "behaviorlm", "group": "ours"},
    {"name": "one-stage (same data)", "kind": "one_stage", "group": "baseline"},
    {"name": "class-balanced FT", "kind": "balanced_ft", "group": "baseline", "train_samples": "matched"},
    {"name": "logistic regression", "kind": "logreg", "group": "baseline", "train_samples": "matched"},
]


def test_balanced_subset_draws_equal_counts_with_replacement_where_short(prepared, tmp_path):
    d, _ = prepared
    data = PreparedDataset(d, "beh")
    labels = Counter(m["label"] for m in read_jsonl(data.meta_path("train_all")))
    n = 3 * len(labels) + 2
    info = steps.balanced_subset(data, tmp_path / "a.jsonl", split="train_all", n=n, seed=1)
    assert info["n"] == n and info["classes"] == len(labels)
    # Every class short of its 3 (or 4) draws is drawn with replacement; none with 5 or more is.
    short = info["classes_drawn_with_replacement"]
    assert sum(c < 3 for c in labels.values()) <= short <= sum(c < 4 for c in labels.values())
    outputs = {r["output"] for r in read_jsonl(tmp_path / "a.jsonl")}
    assert outputs == set(labels)  # every behavior, the rarest included
    counts = Counter(r["output"] for r in read_jsonl(tmp_path / "a.jsonl"))
    assert max(counts.values()) - min(counts.values()) <= 1
    again = steps.balanced_subset(data, tmp_path / "b.jsonl", split="train_all", n=n, seed=1)
    assert again == info and (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


def test_one_stage_trains_on_exactly_ours_data_and_balanced_matches_its_count(tmp_path, tiny_model, small_data_dir):
    from test_bench import write_suite

    path = write_suite(
        tmp_path,
        tiny_model,
        small_data_dir,
        variants=VARIANTS,
        seeds=[0],
        sweeps={},
        sasrec={"enabled": False},
        prepare=small_synthetic_prepare(small_data_dir),
    )
    logs: list[str] = []
    res = BenchRunner(load_suite(path), log=logs.append).run()
    v = res["variants"]
    ours, one, bal = (v[n]["per_seed"]["0"] for n in ("BehaviorLM", "one-stage (same data)", "class-balanced FT"))
    assert one["train_samples"] == ours["train_samples"] == bal["train_samples"]
    assert ours["labels_read"] > 0 and bal["labels_read"] == 0
    lr = v["logistic regression"]["per_seed"]["0"]
    assert lr["train_samples"] == ours["train_samples"] and [s["kind"] for s in lr["steps"]] == ["logreg"]
    # one-stage reuses ours' mix and selection (cache hits) and trains once, on both datasets together.
    kinds = [s["kind"] for s in one["steps"]]
    assert kinds == ["mix", "select", "train", "eval"]
    assert [s["key"] for s in one["steps"][:2]] == [s["key"] for s in ours["steps"] if s["kind"] in ("mix", "select")]
    yaml_text = next((Path(load_suite(path).cache_dir) / "train").glob(f"{one['steps'][2]['key']}/train.yaml"))
    assert yaml_text.read_text().count("bench_") >= 2  # dataset: bench_<mix>,bench_<picked>
    report = (Path(load_suite(path).out_dir) / "report.md").read_text()
    assert "labels seen" in report and "one-stage (same data)" in report
    assert json.loads((Path(load_suite(path).out_dir) / "results.json").read_text())["complete"] is True


def test_the_logistic_regression_sees_the_full_ft_subset_and_ranks_every_candidate(prepared, tmp_path):
    from behaviorlm_plugin.baselines.logreg import run_logreg

    d, _ = prepared
    data = PreparedDataset(d, "beh")
    res = run_logreg(data, tmp_path / "lr", train_size=120, seed=3)
    again = run_logreg(data, tmp_path / "lr2", train_size=120, seed=3)
    assert res["metrics"] == again["metrics"] and res["train_size"] == 120
    rows = read_jsonl(tmp_path / "lr" / "test" / "preds.jsonl")
    metas = read_jsonl(data.meta_path("test"))
    assert [r["id"] for r in rows] == [m["id"] for m in metas]
    for r, m in zip(rows, metas, strict=True):
        assert sorted(x["behavior"] for x in r["ranked"]) == sorted(m["candidates"])
        assert abs(sum(x["prob"] for x in r["ranked"]) - 1) < 1e-6
    # The same natural subset a full fine-tuning row of that size and seed trains on.
    steps.subset(data, tmp_path / "sub.jsonl", split="train_all", n=120, seed=3)
    from behaviorlm_plugin.baselines.logreg import subset_index

    recs = read_jsonl(data.path("train_all"))
    idx = subset_index(len(recs), 120, 3)
    assert [recs[i] for i in idx] == read_jsonl(tmp_path / "sub.jsonl")


def test_a_balanced_row_too_small_for_every_behavior_fails_before_any_step(tmp_path, tiny_model, small_data_dir):
    import pytest
    from test_bench import write_suite

    from behaviorlm_plugin.runs.bench.runner import BenchError

    rows = [VARIANTS[0], {"name": "tiny balanced", "kind": "balanced_ft", "group": "baseline", "train_samples": 3}]
    path = write_suite(tmp_path, tiny_model, small_data_dir, variants=rows, seeds=[0], sweeps={},
                       sasrec={"enabled": False}, prepare=small_synthetic_prepare(small_data_dir))  # fmt: skip
    logs: list[str] = []
    with pytest.raises(BenchError, match=r"cannot give each of the \d+ behaviors a sample"):
        BenchRunner(load_suite(path), log=logs.append).run()
    assert not any(": running" in line and "[bench] train" in line for line in logs)  # no training started


def test_the_hour_place_rule_is_a_row_with_a_curve_and_counts_every_label_it_read(tmp_path, tiny_model, small_data_dir):
    from test_bench import write_suite

    variants = [
        *VARIANTS[:1],
        {"name": "hour+place", "kind": "hour_place", "group": "baseline", "prior_correction": 1.0},
    ]
    path = write_suite(
        tmp_path, tiny_model, small_data_dir, variants=variants, seeds=[0, 1], sweeps={}, sasrec={"enabled": False},
        prepare=small_synthetic_prepare(small_data_dir),
    )  # fmt: skip
    res = BenchRunner(load_suite(path), log=lambda _: None, only=["hour+place"]).run()
    row = res["variants"]["hour+place"]
    data = PreparedDataset(small_data_dir, "beh")
    seeds = row["per_seed"]
    assert seeds["0"]["train_samples"] == data.stats.samples_written["train_all"] == seeds["1"]["train_samples"]
    assert seeds["0"]["predictions"] == seeds["1"]["predictions"]  # a rule: the same at every seed
    assert seeds["0"]["alpha"] == 1.0 and len(seeds["0"]["curve"]["alphas"]) > 2
    assert [s["kind"] for s in seeds["0"]["steps"]] == ["hour_place", "prior_correction"]
