"""bench_gpu.py's CPU smoke run on the tiny model: every section runs and the summary reads its rows."""

import json
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_gpu_runs_on_cpu_with_the_tiny_model(prepared, tiny_model, tmp_path, monkeypatch):
    d, _ = prepared
    out = tmp_path / "gpu.json"
    cmd = [str(ROOT / "benchmarks/bench_gpu.py"), "--device", "cpu", "--model", str(tiny_model)]
    cmd += ["--models", f"smollm2-135m,tiny-random={tiny_model / 'config.json'}", "--steps", "2"]
    cmd += ["--settings", "recipe,checkpointing_on"]
    cmd += ["--fast-micro-batch", "4", "--dataset-dir", str(d), "--dataset", "beh_train_all"]
    cmd += ["--scoring-data", str(d / "beh" / "test_balanced.jsonl"), "--scoring-samples", "4"]
    cmd += ["--scoring-batch-sizes", "2,4", "--sasrec-dataset", "beh", "--sasrec-epochs", "1"]
    cmd += [
        "--extra",
        "{cutoff_len: 256, trust_remote_code: false, preprocessing_num_workers: null, dataloader_num_workers: 0}",
        "--out",
        str(out),
    ]
    # The script's own `__main__`, in this process: a fresh interpreter would spend most of the test importing
    # torch, transformers and LLaMA-Factory again.
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "argv", cmd)
    runpy.run_path(cmd[0], run_name="__main__")
    r = json.loads(out.read_text())
    assert r["device"].startswith("cpu")
    by = {(row["model"], row["setting"]): row for row in r["training"]}
    assert by[("smollm2-135m", "checkpointing_on")]["model_facts"]["gradient_checkpointing"] is True
    assert by[("smollm2-135m", "recipe")]["model_facts"]["gradient_checkpointing"] is False  # as shipped
    assert by[("tiny-random", "recipe")]["weights"] == "random"
    assert all(row["tokens_per_s"] > 0 for row in r["training"])
    assert set(by) == {(m, s) for m in ("smollm2-135m", "tiny-random") for s in ("recipe", "checkpointing_on")}
    assert sum(row["best"] for row in r["training"] if row["model"] == "smollm2-135m") == 1
    assert r["summary"]["scoring"]["samples_per_s"] > 0
    exact = r["scoring"][-1]["exactness"]
    assert exact["argmax_agrees"] and exact["max_abs_logprob_diff"] < 1e-3
    assert r["sasrec"]["samples_per_s"] > 0 and r["summary"]["smollm2-135m"]["met"] is False
