"""predict / evaluate on the tiny random model (CPU), including a 2-process torchrun run."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from behaviorlm_plugin.cli import main
from behaviorlm_plugin.data.dataset import DatasetError, DatasetStats, load_split
from behaviorlm_plugin.eval.evaluate import evaluate_file
from behaviorlm_plugin.eval.predict import predict
from behaviorlm_plugin.extras.fileio import read_jsonl
from behaviorlm_plugin.hparams.eval_args import PredictArguments


@pytest.fixture(scope="module")
def split(prepared):
    d, _ = prepared
    return d / "beh" / "test_balanced.jsonl", d / "beh" / "stats.json"


@pytest.fixture(scope="module")
def scored(split, tiny_model, tmp_path_factory):
    data, _ = split
    out = tmp_path_factory.mktemp("pred") / "preds.jsonl"
    rows = predict(
        PredictArguments(
            model=str(tiny_model),
            data=str(data),
            out=str(out),
            top_k=0,
            template="smollm2",
            max_samples=24,
            batch_size=3,
        )
    )
    return out, rows


def test_predict_rows(scored, split):
    out, rows = scored
    assert read_jsonl(out) == rows and len(rows) == 24
    _, metas = load_split(split[0], max_samples=24)
    assert [r["id"] for r in rows] == [m["id"] for m in metas]
    for r, m in zip(rows, metas, strict=True):
        probs = [c["prob"] for c in r["ranked"]]
        assert len(probs) == len(m["candidates"]) and abs(sum(probs) - 1) < 1e-6
        assert probs == sorted(probs, reverse=True) and r["prediction"] == r["ranked"][0]["behavior"]
        assert r["correct"] == (r["prediction"] == m["label"]) and 1 <= r["true_rank"] <= len(probs)
    info = json.loads(out.with_name("preds.run.json").read_text())
    assert info["samples"] == 24 and info["processes"] == 1


def test_max_per_class_subset(split):
    _, metas = load_split(split[0], max_per_class=1, seed=3)
    labels = [m["label"] for m in metas]
    assert len(labels) == len(set(labels)) > 5


def test_evaluate_writes_metrics_and_plots(scored, split, tmp_path):
    out, rows = scored
    m = evaluate_file(out, DatasetStats.read(split[1]), tmp_path)
    assert m["weighted_recall"] == pytest.approx(np.mean([r["correct"] for r in rows]))
    assert m["hr@1"] == pytest.approx(m["weighted_recall"]) and m["hr@5"] >= m["hr@3"] >= m["hr@1"]
    assert json.loads((tmp_path / "metrics.json").read_text())["n"] == 24
    for png in ("per_behavior_accuracy.png", "confusion.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"


def test_generation_method_reports_invalid_rate(split, tiny_model, tmp_path):
    out = tmp_path / "gen.jsonl"
    rows = predict(
        PredictArguments(
            model=str(tiny_model),
            data=str(split[0]),
            out=str(out),
            method="generate",
            max_new_tokens=3,
            max_samples=6,
            template="smollm2",
        )
    )
    assert all("raw_output" in r and r["valid"] == (r["prediction"] is not None) for r in rows)
    m = evaluate_file(out, DatasetStats.read(split[1]), tmp_path / "ev")
    assert m["invalid_rate"] == pytest.approx(np.mean([not r["valid"] for r in rows]))


def test_bad_inputs_are_named(split, tmp_path):
    lonely = tmp_path / "x.jsonl"
    lonely.write_text('{"id": 1}\n')
    with pytest.raises(DatasetError, match=r"x\.meta\.jsonl: metadata sidecar not found"):
        load_split(lonely)
    (tmp_path / "x.meta.jsonl").write_text('{"id": 2, "candidates": []}\n')
    with pytest.raises(DatasetError, match="row 0 does not match"):
        load_split(lonely)
    with pytest.raises(DatasetError, match=r"stats\.json not found"):
        DatasetStats.read(tmp_path / "nope.json")


def test_cli_evaluate_from_model(split, tiny_model, tmp_path, capsys):
    data, stats = split
    rc = main(
        [
            "evaluate",
            "--model",
            str(tiny_model),
            "--data",
            str(data),
            "--stats",
            str(stats),
            "--out-dir",
            str(tmp_path),
            "--max-per-class",
            "1",
            "--template",
            "smollm2",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "Acc_avg" in out and "tail" in out
    assert (tmp_path / "preds.jsonl").exists() and (tmp_path / "metrics.json").exists()
    rows = read_jsonl(tmp_path / "preds.jsonl")
    labels = [r["label"] for r in rows]
    assert len(labels) == len(set(labels))  # --max-per-class 1 was honoured
    assert main(["evaluate", "--preds", str(tmp_path / "preds.jsonl"), "--stats", str(tmp_path / "missing.json")]) == 1


def test_torchrun_two_processes_match_single_process(scored, split, tiny_model, tmp_path, free_port):
    _, rows = scored
    out = tmp_path / "dp.jsonl"
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    cmd = [
        torchrun,
        "--nproc_per_node",
        "2",
        "--master_port",
        str(free_port),
        "-m",
        "behaviorlm_plugin.cli",
        "predict",
        "--model",
        str(tiny_model),
        "--data",
        str(split[0]),
        "--out",
        str(out),
        "--top_k",
        "0",
        "--template",
        "smollm2",
        "--max_samples",
        "24",
        "--batch_size",
        "3",
        "--device",
        "cpu",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    dp = read_jsonl(out)
    assert [r["id"] for r in dp] == [r["id"] for r in rows]
    assert [r["prediction"] for r in dp] == [r["prediction"] for r in rows]
    np.testing.assert_allclose([r["true_prob"] for r in dp], [r["true_prob"] for r in rows], atol=1e-5)
    assert json.loads(out.with_name("dp.run.json").read_text())["processes"] == 2
    assert not list(tmp_path.glob("dp.jsonl.rank*"))


def test_evaluate_cli_applies_the_prior_correction(scored, split, tmp_path, capsys):
    out, _ = scored
    base = ["evaluate", "--preds", str(out), "--stats", str(split[1])]
    plain, corrected = tmp_path / "plain", tmp_path / "alpha1"
    main([*base, "--out-dir", str(plain)])
    main([*base, "--out-dir", str(corrected), "--prior-correction", "1"])
    m0 = json.loads((plain / "metrics.json").read_text())
    m1 = json.loads((corrected / "metrics.json").read_text())
    assert m0["alpha"] == 0 and m1["alpha"] == 1
    assert (corrected / "preds_prior_corrected.jsonl").is_file() and "alpha = 1" in capsys.readouterr().out
    assert main([*base, "--prior-correction", "auto"]) == 1  # auto needs --val-preds, and says so
    assert "--val-preds" in capsys.readouterr().err
