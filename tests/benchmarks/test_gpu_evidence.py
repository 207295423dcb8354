"""scripts/gpu_evidence.sh dry-runs on CPU with the tiny model: throughput file, suite report, environment."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from small_configs import FAST_TRAIN, small_synthetic_prepare

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "yaml_recipes" / "smollm2-135m-cpu"


def test_gpu_evidence_script_dry_run_on_cpu(tiny_model, tmp_path):
    fast = {**FAST_TRAIN, "max_steps": 1}
    suite = {
        "name": "dry-run",
        "model_name_or_path": str(tiny_model),
        "template": "smollm2",
        "recipes": {"a_tuning": str(RECIPES / "a_tuning.yaml"), "b_tuning": str(RECIPES / "b_tuning.yaml")},
        "overrides": {"a_tuning": fast, "b_tuning": fast},
        "prepare": small_synthetic_prepare(tmp_path / "data"),  # not there yet: the script prepares it
        "cache_dir": str(tmp_path / "cache"),
        "seeds": [0],
        "a_tuning": {"anchors": 4, "aux_ratio": 0.5},
        "selection": {"k": 1, "chunk_size": 2, "max_scored_per_class": 1, "batch_size": 8},
        "evaluation": {"splits": ["test"], "test": {"max_samples": 4}, "batch_size": 8},
        "variants": [
            {"name": "zero-shot", "kind": "zero_shot", "group": "baseline"},
            {"name": "BehaviorLM", "kind": "behaviorlm", "group": "ours"},
        ],
        "sasrec": {"enabled": False},
    }
    suite_path = tmp_path / "suite.yaml"
    suite_path.write_text(yaml.safe_dump(suite, sort_keys=False))
    out = tmp_path / "evidence"
    env = dict(os.environ, PY=sys.executable)
    env["BENCH_GPU_ARGS"] = (
        "--device cpu --models smollm2-135m --settings recipe --steps 2 --fast-micro-batch 2 --scoring-samples 2 "
        "--scoring-batch-sizes 2 --sasrec-epochs 1 "
        '--extra {"cutoff_len":256,"trust_remote_code":false,"preprocessing_num_workers":null}'
    )
    cmd = ["bash", str(ROOT / "scripts/gpu_evidence.sh"), str(tiny_model), str(out), str(suite_path)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    gpu = json.loads((out / "gpu_throughput.json").read_text())
    assert gpu["device"].startswith("cpu") and gpu["training"]
    assert (tmp_path / "data" / "dataset_info.json").is_file()  # the suite's own prepare block made the data
    results = json.loads((out / "suite" / "results.json").read_text())
    assert {"zero-shot", "BehaviorLM"} <= set(results["variants"])
    assert (out / "suite" / "report.md").is_file()
    assert "torch:" in (out / "environment.txt").read_text()
    assert set(json.loads((out / "timings.json").read_text())) == {"bench_gpu_done_s", "suite_done_s"}


def test_gpu_evidence_refuses_a_missing_model(tmp_path):
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts/gpu_evidence.sh"), str(tmp_path / "nope"), str(tmp_path / "o")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "not a model folder" in proc.stderr
