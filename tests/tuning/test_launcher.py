"""Recipe -> LLaMA-Factory arguments: the pipeline and the bench build them the same way, with one precedence."""

from pathlib import Path

import pytest
import yaml

from behaviorlm_plugin.runs import steps
from behaviorlm_plugin.runs.bench.context import training_settings
from behaviorlm_plugin.runs.bench.runner import load_suite
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
    return PipelineRunner(load_pipeline(pipe), log=lambda s: None), Bench(training_settings(load_suite(suite)))


class Bench:
    """The bench's side of a stage: the step layer with the suite's training settings (as its train steps call it)."""

    def __init__(self, settings: steps.TrainSettings) -> None:
        self.settings = settings

    def train_config(self, stage, dataset, output_dir, init, seed):
        return steps.train_config(self.settings, stage, dataset=dataset, output_dir=output_dir, init=init, seed=seed)


PLACEHOLDERS = {k: f"<{k}>" for k in ("dataset_dir", "dataset", "eval_dataset", "output_dir", "adapter_name_or_path")}


def placeholders(cfg: dict) -> dict:
    """The arguments with the run-owned paths and names replaced (where a run keeps its files)."""
    return {k: PLACEHOLDERS.get(k, v) for k, v in cfg.items()}


@pytest.mark.parametrize("stage", ["a_tuning", "b_tuning"])
@pytest.mark.parametrize("recipe_dir", ["smollm2-135m-cpu", "llama3.1-8b"])
def test_the_same_stage_through_the_pipeline_and_the_bench_gets_identical_arguments(tmp_path, stage, recipe_dir):
    """Seed 5 in both (the pipeline's through its overrides, the bench's from its suite seeds): identical
    LLaMA-Factory arguments once the paths a run owns are placeholders, the eval-dataset rule and
    lora_top_layers included (the GPU recipes evaluate every epoch)."""
    recipes = ROOT / "yaml_recipes" / recipe_dir
    common = {
        "model_name_or_path": "some/model",
        "template": "smollm2",
        "recipes": {k: str(recipes / f"{k}.yaml") for k in ("a_tuning", "b_tuning", "export")},
        "prepare": {"synthetic": True, "dataset_dir": str(tmp_path / "data"), "name": "beh"},
    }
    overrides = {"learning_rate": 3.0e-3}
    pipe_yaml = tmp_path / "pipeline.yaml"
    pipe_yaml.write_text(
        yaml.safe_dump({**common, "run_dir": str(tmp_path / "run"), "overrides": {stage: {**overrides, "seed": 5}}})
    )
    suite_yaml = tmp_path / "suite.yaml"
    variants = [{"name": "BehaviorLM", "kind": "behaviorlm", "group": "ours"}]
    suite_yaml.write_text(
        yaml.safe_dump(
            {
                **common,
                "name": "s",
                "cache_dir": str(tmp_path / "c"),
                "variants": variants,
                "seeds": [5],
                "overrides": {stage: overrides},
            }
        )
    )
    pipe = PipelineRunner(load_pipeline(pipe_yaml), log=lambda s: None)
    bench = Bench(training_settings(load_suite(suite_yaml)))
    adapter = str(tmp_path / "a") if stage == "b_tuning" else None
    a = pipe.stage_arguments(stage, "beh_x", adapter)
    b = bench.train_config(stage, "bench_x", str(tmp_path / "out"), adapter, seed=5)
    assert a["seed"] == b["seed"] == 5 and a["learning_rate"] == 3.0e-3
    assert placeholders(a) == placeholders(b)
    if recipe_dir == "llama3.1-8b":  # eval_strategy: epoch: the run's own val dataset in both
        assert a["eval_strategy"] == "epoch" and (a["eval_dataset"], b["eval_dataset"]) == ("beh_val", "bench_val")


@pytest.mark.parametrize("stage", ["a_tuning", "b_tuning"])
def test_pipeline_and_bench_give_the_same_llamafactory_arguments(tmp_path, stage):
    pipe, bench = configs(tmp_path, OVERRIDES)
    adapter = str(tmp_path / "a") if stage == "b_tuning" else None
    a = pipe.stage_arguments(stage, "beh_x", adapter)
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
        pipe.stage_arguments("a_tuning", "beh_x", None)
    with pytest.raises(LaunchError, match=rf"overrides\.a_tuning\.{key}: this key is set by the run"):
        bench.train_config("a_tuning", "bench_x", "out", None, seed=0)


def test_bench_refuses_a_seed_override_the_pipeline_allows(tmp_path):
    pipe, bench = configs(tmp_path, {"seed": 9})
    assert pipe.stage_arguments("a_tuning", "beh_x", None)["seed"] == 9
    with pytest.raises(LaunchError, match=r"overrides\.a_tuning\.seed"):
        bench.train_config("a_tuning", "bench_x", "out", None, seed=0)


def test_export_arguments_point_at_the_run(tmp_path):
    pipe, _ = configs(tmp_path, {})
    cfg = pipe.export_config()
    assert cfg["adapter_name_or_path"] == str(tmp_path / "run" / "b_tuning")
    assert cfg["export_dir"] == str(tmp_path / "run" / "export") and cfg["model_name_or_path"] == "some/model"


def test_the_stock_forward_trains_with_neither_speed_up(monkeypatch, tmp_path):
    """``stock_forward`` (the pilot's check): LLaMA-Factory's own forward, so no answer-only head and no reuse."""
    import llamafactory.train.tuner as tuner

    from behaviorlm_plugin.hparams.tuning_args import FrozenReuseArguments
    from behaviorlm_plugin.tuning.launcher import run_training

    seen: list[list] = []
    monkeypatch.setattr(tuner, "run_exp", lambda cfg, callbacks: seen.append(callbacks))
    reuse = FrozenReuseArguments(enabled=True, cache_dir=str(tmp_path / "cache"))
    cfg = {"model_name_or_path": "m", "output_dir": str(tmp_path)}
    run_training(cfg, tmp_path / "a.yaml", reuse=reuse)
    run_training(cfg, tmp_path / "b.yaml", reuse=reuse, stock_forward=True)
    assert len(seen[0]) == 2 and seen[1] == []
