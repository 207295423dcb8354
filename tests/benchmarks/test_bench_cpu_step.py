"""bench_cpu_step.py runs end to end on the tiny model and writes the ratio the speed target reads."""

import json
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_cpu_step_on_the_tiny_model(prepared, tiny_model, tmp_path, monkeypatch):
    d, _ = prepared
    out = tmp_path / "cpu.json"
    extra = "{template: smollm2, cutoff_len: 256, trust_remote_code: false}"
    cmd = [str(ROOT / "benchmarks/bench_cpu_step.py"), "--model", str(tiny_model)]
    cmd += ["--dataset-dir", str(d), "--dataset", "beh_atuning_mix", "--steps", "2", "--extra", extra]
    cmd += ["--out", str(out)]
    # The script's own `__main__`, in this process (a fresh interpreter would spend most of the test importing
    # torch, transformers and LLaMA-Factory again); its trainer's output folder goes under TMPDIR: this test's.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(sys, "argv", cmd)
    runpy.run_path(cmd[0], run_name="__main__")
    r = json.loads(out.read_text())
    assert r["ratio_recipe_over_raw"] > 0 and r["ratio_recipe_before_over_raw"] > 0
    before, after = r["rows"]["before"], r["rows"]["after"]
    assert before["model_facts"]["gradient_checkpointing"] is True
    assert after["model_facts"]["gradient_checkpointing"] is False
    # the raw step ran on exactly the recipe's batches
    assert after["raw_step"]["tokens_per_step"] == after["recipe_step"]["tokens_per_step"]
    assert after["recipe_step"]["steps_timed"] == 1
