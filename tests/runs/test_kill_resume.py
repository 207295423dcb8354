"""Kills at deterministic points (extras/pause.py, never a timer) in every later pipeline stage and in a bench
part's training, then a resume: the pipeline's files equal an uninterrupted run's, and a bench re-run redoes
only the killed part."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from safetensors.numpy import load_file
from test_pipeline import full_run, pipe_data, write_pipeline  # noqa: F401 (fixtures)

from behaviorlm_plugin.extras.pause import PAUSE_ENV, PAUSE_FILE_ENV
from behaviorlm_plugin.runs.bench.parts import part_path
from behaviorlm_plugin.runs.bench.runner import load_suite, run_parts
from behaviorlm_plugin.runs.pipeline import PipelineRunner, load_pipeline

STAGE_POINTS = [
    ("selection", "selection.scored"),
    ("b_tuning", "train.step:b_tuning"),
    ("evaluate", "evaluate.split"),
    ("export", "export.merged"),
]


def run_until(argv: list[str], point: str, flag: Path) -> None:
    """``behaviorlm ARGV`` in a child that stops at ``point``; SIGKILL it there."""
    env = dict(os.environ, **{PAUSE_ENV: point, PAUSE_FILE_ENV: str(flag)})
    cmd = [sys.executable, "-m", "behaviorlm_plugin.cli", *argv]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 600  # a guard against a hang; the kill itself waits on the flag, not a clock
    while not flag.exists():
        if proc.poll() is not None:
            pytest.fail(f"{argv[0]} exited before {point}: {proc.stderr.read().decode()[-3000:]}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"never reached {point}")
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _tensors_close(a: Path, b: Path, tol: float = 1e-6) -> None:
    ta, tb = load_file(str(a)), load_file(str(b))
    assert ta.keys() == tb.keys()
    for k in ta:
        assert abs(ta[k].astype("float64") - tb[k].astype("float64")).max() <= tol, (a, k)


def test_kills_in_selection_b_tuning_evaluation_and_export_then_resume_match_an_uninterrupted_run(
    tmp_path,
    tiny_model,
    pipe_data,  # noqa: F811
    full_run,  # noqa: F811
):
    ref_tmp, _, _ = full_run
    ref = ref_tmp / "run"
    path = write_pipeline(tmp_path, tiny_model, pipe_data, lora_top_layers=1)  # as the reference run
    run = tmp_path / "run"
    for stage, point in STAGE_POINTS:
        run_until(["run", str(path)], point, tmp_path / f"paused-{stage}")
        killed = json.loads((run / "manifest.json").read_text())["stages"]
        assert killed[stage]["status"] != "done", (stage, killed[stage])
        assert all(killed[s]["status"] == "done" for s in list(killed)[: list(killed).index(stage)])
    assert not (run / "export" / "behaviorlm.json").exists()  # the last kill came after the merge, before it
    resumed = PipelineRunner(load_pipeline(path), log=lambda s: None).run()["stages"]
    assert all(v["status"] == "done" for v in resumed.values())

    # Data, selection and predictions: byte-identical to the uninterrupted run's.
    for rel in ("eval/test/preds.jsonl", "eval/test_balanced/preds.jsonl", "eval_zero_shot/test/preds.jsonl"):
        assert (run / rel).read_bytes() == (ref / rel).read_bytes(), rel
    picked = {r: json.loads((r / "selection.json").read_text())["picks"] for r in (run, ref)}
    assert picked[run] == picked[ref]
    b_sets = [Path(json.loads((r / "manifest.json").read_text())["stages"]["selection"]["outputs"]["dataset"])
              for r in (run, ref)]  # fmt: skip
    assert b_sets[0].read_bytes() == b_sets[1].read_bytes()
    # Adapters and the merged export: within 1e-6.
    for rel in ("a_tuning/adapter_model.safetensors", "b_tuning/adapter_model.safetensors"):
        _tensors_close(run / rel, ref / rel)
    for f in sorted((ref / "export").glob("*.safetensors")):
        _tensors_close(run / "export" / f.name, f)
    assert json.loads((run / "export" / "behaviorlm.json").read_text()) == json.loads(
        (ref / "export" / "behaviorlm.json").read_text()
    )


def test_a_kill_in_a_bench_parts_training_keeps_earlier_parts_and_reruns_only_it(tmp_path, tiny_model, small_data_dir):
    from test_bench import FAST, write_suite

    variants = [
        {"name": "zero-shot", "kind": "zero_shot", "group": "baseline"},
        {"name": "BehaviorLM", "kind": "behaviorlm", "group": "ours"},
        {"name": "anchor-only", "kind": "anchor_only", "group": "baseline"},
    ]
    parts = [{"name": "base", "variants": ["zero-shot"]}, {"name": "tuned", "variants": ["BehaviorLM", "anchor-only"]}]
    path = write_suite(
        tmp_path, tiny_model, small_data_dir, variants=variants, parts=parts, seeds=[0], sweeps={},
        sasrec={"enabled": False}, overrides={"a_tuning": FAST, "b_tuning": FAST},
    )  # fmt: skip
    suite = load_suite(path)
    run_parts(suite, ["base"], log=lambda s: None)
    first = part_path(suite, "base").read_bytes()
    # 'tuned' dies after the first optimizer step of its first training run (BehaviorLM's A-Tuning), its
    # A-Tuning mix already a finished step.
    run_until(["bench", str(path), "--part", "tuned"], "train.step:train", tmp_path / "paused-tuned")
    assert part_path(suite, "base").read_bytes() == first  # the earlier part is intact
    killed = part_path(suite, "tuned")
    assert not killed.exists() or json.loads(killed.read_text())["complete"] is False
    logs: list[str] = []
    merged = run_parts(load_suite(path), ["next"], log=logs.append)
    assert any("part tuned:" in line for line in logs) and not any("part base:" in line for line in logs)
    assert any(line.startswith("[bench] mix ") and line.endswith("s saved)") for line in logs)  # reused
    assert any(line.startswith("[bench] train ") and ": running" in line for line in logs)  # the killed step
    assert merged["complete"] is True and merged["parts"]["done"] == ["base", "tuned"]
    assert part_path(suite, "base").read_bytes() == first
    assert yaml.safe_load(path.read_text())["parts"] == parts  # nothing rewrote the suite
