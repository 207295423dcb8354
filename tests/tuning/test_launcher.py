"""Recipe -> LLaMA-Factory arguments: the pipeline and the bench build them the same way, with one precedence."""

from pathlib import Path

import pytest
import yaml

from behaviorlm_plugin.runs.bench.runner import BenchRunner, load_suite
from behaviorlm_plugin.runs.pipeline import PipelineRunner, load_pipeline
from behaviorlm_plugin.tuning.launcher import RUN_OWNED, LaunchError, read_recipe

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "yaml_recipes" / "smollm2-135m-cpu"
OVERRIDES = {"learning_rate": 3.0e-3, "max_steps": 2, "lora_rank": 4}


def configs(tmp_path: Path, overrides: dict):
    common = {
        "model_name_or_path": "some/model",
        "template": "smollm2",
        "recipes": {k: str(RECIPES / f"{k}.yaml") for k in ("a_tuning", "b_tuning", "export")},
        "prepare": {"synthetic": True, "dataset_dir": str(tmp_path / "data"), "name": "beh"},
        "overrides": {"a_tuning": overrides, "b_tuning": overrides},
    }
    pipe = tmp_path / "pipeline.yaml"
    pipe.write_text(yaml.safe_dump({**common, "run_dir": str(tmp_path / "run")}))
    suite = tmp_path / "suite.yaml"
    variants = [{"name": "BehaviorLM", "kind": "behaviorlm", "group": "ours"}]
    suite.write_text(yaml.safe_dump({**common, "name": "s", "cache_dir": str(tmp_path / "c"), "variants": variants}))
    return PipelineRunner(load_pipeline(pipe), log=lambda s: None), BenchRunner(load_suite(suite), log=lambda s: None)


@pytest.mark.parametrize("stage", ["a_tuning", "b_tuning"])
def test_pipeline_and_bench_give_the_same_llamafactory_arguments(tmp_path, stage):
    pipe, bench = configs(tmp_path, OVERRIDES)
    adapter = str(tmp_path / "a") if stage == "b_tuning" else None
    a = pipe.train_config(stage, "beh_x", adapter)
    b = bench.train_config(stage, "bench_x", str(tmp_path / "out"), adapter, seed=3)
    owned = set(RUN_OWNED) | {"seed", "overwrite_output_dir"}
    shared_a = {k: v for k, v in a.items() if k not in owned}
    shared_b = {k: v for k, v in b.items() if k not in owned}
    assert shared_a == shared_b
    # ... and they are the recipe with the overrides on top (precedence: recipe < overrides).
    recipe = read_recipe(RECIPES / f"{stage}.yaml")
    expected = {k: v for k, v in {**recipe, **OVERRIDES}.items() if k not in owned}
    assert shared_a == expected and shared_a["learning_rate"] == 3.0e-3
    # The run-owned keys come from the config's top level and the run, never from the recipe.
    for cfg in (a, b):
        assert cfg["model_name_or_path"] == "some/model" and cfg["template"] == "smollm2"
        assert cfg.get("adapter_name_or_path") == adapter
    assert b["seed"] == 3 and a.get("seed") == recipe.get("seed")


@pytest.mark.parametrize("key", ["model_name_or_path", "template", "dataset", "output_dir"])
def test_overriding_a_run_owned_key_is_an_error_in_both(tmp_path, key):
    pipe, bench = configs(tmp_path, {key: "x"})
    with pytest.raises(LaunchError, match=rf"overrides\.a_tuning\.{key}: this key is set by the run"):
        pipe.train_config("a_tuning", "beh_x", None)
    with pytest.raises(LaunchError, match=rf"overrides\.a_tuning\.{key}: this key is set by the run"):
        bench.train_config("a_tuning", "bench_x", "out", None, seed=0)


def test_bench_refuses_a_seed_override_the_pipeline_allows(tmp_path):
    pipe, bench = configs(tmp_path, {"seed": 9})
    assert pipe.train_config("a_tuning", "beh_x", None)["seed"] == 9
    with pytest.raises(LaunchError, match=r"overrides\.a_tuning\.seed"):
        bench.train_config("a_tuning", "bench_x", "out", None, seed=0)


def test_export_arguments_point_at_the_run(tmp_path):
    pipe, _ = configs(tmp_path, {})
    cfg = pipe.export_config()
    assert cfg["adapter_name_or_path"] == str(tmp_path / "run" / "b_tuning")
    assert cfg["export_dir"] == str(tmp_path / "run" / "export") and cfg["model_name_or_path"] == "some/model"
