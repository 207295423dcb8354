"""The whole progressive pipeline end to end on the tiny random Llama, resume after a kill, invalidation."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from small_configs import FAST_TRAIN, small_synthetic_prepare

from behaviorlm_plugin.runs.pipeline import PipelineError, PipelineRunner, apply_overrides, load_pipeline
from behaviorlm_plugin.tuning.launcher import LaunchError

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "yaml_recipes" / "smollm2-135m-cpu"
FAST = FAST_TRAIN


def write_pipeline(tmp: Path, tiny_model: Path, data_dir: Path | None = None, **extra) -> Path:
    cfg = {
        "run_dir": str(tmp / "run"),
        "model_name_or_path": str(tiny_model),
        "template": "smollm2",
        "recipes": {
            "a_tuning": str(RECIPES / "a_tuning.yaml"),
            "b_tuning": str(RECIPES / "b_tuning.yaml"),
            "export": str(RECIPES / "export.yaml"),
        },
        "prepare": small_synthetic_prepare(data_dir or tmp / "data", mix_anchor_samples=20),
        "selection": {"k": 2, "chunk_size": 2, "max_scored_per_class": 3, "batch_size": 4},
        "evaluation": {
            "splits": ["test", "test_balanced"],
            "test": {"max_samples": 8},
            "test_balanced": {"max_per_class": 1},
        },
        "overrides": {"a_tuning": FAST, "b_tuning": FAST},
        "export_check": {"samples": 2},
    }
    cfg.update(extra)
    path = tmp / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def pipe_data(tmp_path_factory) -> Path:
    """The pipelines' data folder: prepared by the first run, found up to date by the others (same arguments)."""
    return tmp_path_factory.mktemp("pipe-data")


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, tiny_model, pipe_data):
    tmp = tmp_path_factory.mktemp("pipe")
    path = write_pipeline(tmp, tiny_model, pipe_data, lora_top_layers=1)  # layer 0 is shared by both models
    manifest = PipelineRunner(load_pipeline(path), log=lambda s: None).run()
    return tmp, path, manifest


def test_end_to_end(full_run):
    tmp, _, manifest = full_run
    st = manifest["stages"]
    assert [s for s in st] == ["prepare", "a_tuning", "selection", "b_tuning", "evaluate", "export", "report"]
    assert all(v["status"] == "done" for v in st.values())
    run = tmp / "run"
    assert (run / "a_tuning" / "adapter_model.safetensors").exists()
    assert (run / "b_tuning" / "adapter_model.safetensors").exists()
    sel = json.loads((run / "selection.json").read_text())
    assert sel["picked_total"] > 0 and all(
        {"id", "label", "predicted", "true_prob", "tier"} <= set(p) for p in sel["picks"]
    )
    b_yaml = yaml.safe_load((run / "b_tuning.yaml").read_text())
    assert b_yaml["adapter_name_or_path"] == str(run / "a_tuning")  # B-Tuning resumes the A-Tuning adapter
    assert b_yaml["dataset"].startswith("beh_btuning_")
    assert json.loads((run / "eval" / "test_balanced" / "metrics.json").read_text())["n"] > 0
    check = st["export"]["info"]["check"]
    assert check["ok"] and check["max_abs_diff"] <= check["tolerance"]
    report = (run / "report.md").read_text()
    assert "Acc_avg" in report and "test_balanced" in report and "| a_tuning | done |" in report
    # the model is read beside zero-shot, majority and hour+place on the same samples, in plain words
    ref = json.loads((run / "eval" / "test" / "reference.json").read_text())
    assert set(ref) == {"zero-shot", "majority", "hour+place"}
    assert all(r["n"] == json.loads((run / "eval" / "test" / "metrics.json").read_text())["n"] for r in ref.values())
    assert "| majority |" in report and "## What these figures mean" in report and "Against zero-shot" in report
    for stage in st.values():
        assert stage["seconds"] >= 0 and stage["fingerprint"]


def test_zero_shot_rows_equal_the_base_model_scored_alone(full_run):
    """The evaluation scores the base model in the tuned model's pass (model/twin.py): same rows as alone."""
    from behaviorlm_plugin.eval.predict import predict
    from behaviorlm_plugin.hparams.eval_args import PredictArguments

    tmp, path, _ = full_run
    cfg = load_pipeline(path)
    zero = [json.loads(line) for line in (tmp / "run" / "eval_zero_shot" / "test" / "preds.jsonl").open()]
    data = str(Path(cfg.dataset_dir) / cfg.name / "test.jsonl")
    alone = predict(
        PredictArguments(
            model=cfg.model_name_or_path, template=cfg.template, data=data, out=str(tmp / "alone.jsonl"), top_k=0,
            max_samples=8, seed=cfg.evaluation.seed,
        )
    )  # fmt: skip
    assert len(zero) == len(alone) == 8
    for z, a in zip(zero, alone, strict=True):
        assert (z["id"], z["prediction"]) == (a["id"], a["prediction"])
        assert [r["behavior"] for r in z["ranked"]] == [r["behavior"] for r in a["ranked"]]
        assert z["true_prob"] == pytest.approx(a["true_prob"], abs=1e-5)
    tuned = [json.loads(line) for line in (tmp / "run" / "eval" / "test" / "preds.jsonl").open()]
    assert [t["true_prob"] for t in tuned] != [z["true_prob"] for z in zero]  # two models, not one twice
    for folder in ("eval", "eval_zero_shot"):  # and both came from one pass that ran layer 0 once
        info = json.loads((tmp / "run" / folder / "test" / "preds.run.json").read_text())
        assert info["shared_pass"]["layers_run_once"] == 1


def test_rerun_reuses_everything(full_run):
    _, path, manifest = full_run
    before = {k: v["started"] for k, v in manifest["stages"].items()}
    again = PipelineRunner(load_pipeline(path), log=lambda s: None).run()
    assert {k: v["started"] for k, v in again["stages"].items()} == before


def test_changed_selection_invalidates_later_stages_only(full_run):
    _, path, manifest = full_run
    before = {k: v["started"] for k, v in manifest["stages"].items()}
    logs = []
    after = PipelineRunner(load_pipeline(path, ["selection.k=1"]), log=logs.append).run()["stages"]
    assert after["a_tuning"]["started"] == before["a_tuning"] and after["prepare"]["started"] == before["prepare"]
    for stage in ("selection", "b_tuning", "evaluate", "export", "report"):
        assert after[stage]["started"] > before[stage]
    assert any("inputs changed" in line for line in logs)


def test_kill_after_a_tuning_then_resume_does_not_retrain(tmp_path, tiny_model, pipe_data):
    path = write_pipeline(tmp_path, tiny_model, pipe_data)
    manifest_path = tmp_path / "run" / "manifest.json"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "behaviorlm_plugin.cli", "run", str(path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    # Killed at its own word that A-Tuning is done (the line comes after the manifest says so): no polling.
    hang = threading.Timer(600, os.killpg, (proc.pid, signal.SIGKILL))  # a safety net only, never the trigger
    hang.start()
    try:
        said = next((line for line in proc.stdout if line.startswith("[a_tuning] done")), None)
        if said:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        hang.cancel()
        proc.stdout.close()
    assert said, "pipeline exited before A-Tuning finished"
    killed = json.loads(manifest_path.read_text())["stages"]
    assert killed["a_tuning"]["status"] == "done"
    assert any(v["status"] == "running" for v in killed.values()) or "selection" not in killed
    adapter = tmp_path / "run" / "a_tuning" / "adapter_model.safetensors"
    mtime = adapter.stat().st_mtime_ns
    logs = []
    resumed = PipelineRunner(load_pipeline(path), log=logs.append).run()["stages"]
    assert resumed["a_tuning"]["started"] == killed["a_tuning"]["started"]  # not re-trained
    assert adapter.stat().st_mtime_ns == mtime
    assert any(line.startswith("[a_tuning] up to date") for line in logs)
    assert all(v["status"] == "done" for v in resumed.values())


def test_without_a_tuning_variant(tmp_path, tiny_model, pipe_data):
    path = write_pipeline(tmp_path, tiny_model, pipe_data, skip_a_tuning=True, evaluation={"splits": []})
    st = PipelineRunner(load_pipeline(path), log=lambda s: None, until="b_tuning").run()["stages"]
    assert st["a_tuning"]["status"] == "skipped"
    b_yaml = yaml.safe_load((tmp_path / "run" / "b_tuning.yaml").read_text())
    assert "adapter_name_or_path" not in b_yaml  # stage 2 starts from the base model


def test_bad_pipeline_files(tmp_path, tiny_model, pipe_data):
    path = write_pipeline(tmp_path, tiny_model, bogus=1)
    with pytest.raises(PipelineError, match="unknown key"):
        load_pipeline(path)
    with pytest.raises(PipelineError, match="expected key=value"):
        apply_overrides({}, ["selection.k"])
    # --set keeps the text; the typed layer reads it (tests/hparams/test_parser.py checks the typed values)
    assert apply_overrides({"a": {"b": 1}}, ["a.b=2", "c=[1, 2]"]) == {"a": {"b": "2"}, "c": "[1, 2]"}
    path = write_pipeline(tmp_path, tiny_model, a_tuning="a.yaml")
    with pytest.raises(PipelineError, match=r"a_tuning: this key was renamed; use 'recipes\.a_tuning'"):
        load_pipeline(path)
    for bad in ("- a\n- b\n", "3\n", "just words\n", "run_dir: [unclosed\n"):
        path.write_text(bad)
        with pytest.raises(PipelineError, match=re.escape(str(path))):
            load_pipeline(path)
    path = write_pipeline(tmp_path, tiny_model)
    with pytest.raises(PipelineError, match=r"selection\.kk: unknown key \(did you mean 'k'\?\)"):
        load_pipeline(path, ["selection.kk=3"])  # fails before any stage runs
    path = write_pipeline(tmp_path, tiny_model, pipe_data, model_name_or_path=None)
    with pytest.raises(PipelineError, match="model_name_or_path"):
        load_pipeline(path)
    raw = yaml.safe_load(path.read_text())
    raw["model_name_or_path"] = str(tiny_model)
    raw["recipes"]["a_tuning"] = "missing.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(LaunchError, match="recipe not found"):
        PipelineRunner(load_pipeline(path), log=lambda s: None).run()


def test_bf16_export_is_checked_on_candidate_probabilities(full_run, tiny_model, tmp_path, pipe_data):
    """On GPUs LLaMA-Factory exports bf16 by default; the check must judge it on probabilities, not log-probs."""
    from llamafactory.train.tuner import export_model

    from behaviorlm_plugin.tuning.export import verify_export

    tmp, _, _ = full_run
    adapter = tmp / "run" / "b_tuning"
    merged = tmp_path / "merged_bf16"
    export_model(
        {
            "model_name_or_path": str(tiny_model),
            "adapter_name_or_path": str(adapter),
            "template": "smollm2",
            "finetuning_type": "lora",
            "export_dir": str(merged),
            "export_device": "cpu",
            "infer_dtype": "bfloat16",
        }
    )
    data = pipe_data / "beh" / "test_balanced.jsonl"
    check = verify_export(
        base=str(tiny_model), adapter=str(adapter), merged=str(merged), template="smollm2", data=str(data), n=2
    )
    assert check["merged_dtype"] == "bfloat16" and check["criterion"] == "max_prob_diff"
    assert check["max_abs_diff"] > 0  # bf16 rounding is visible in log-probs
    assert check["ok"] and check["max_prob_diff"] <= check["tolerance"]
    strict = verify_export(
        base=str(tiny_model),
        adapter=str(adapter),
        merged=str(merged),
        template="smollm2",
        data=str(data),
        n=2,
        prob_tolerance=0.0,
    )
    assert not strict["ok"]  # the criterion really is applied
