"""LoRA on the top layers only: the target names, the pipeline setting, and that training really stops there."""

from pathlib import Path

import pytest
import torch
import yaml
from small_configs import FAST_TRAIN, small_synthetic_prepare

from behaviorlm_plugin.runs.pipeline import PipelineRunner, load_pipeline
from behaviorlm_plugin.tuning.lora_layers import LoraLayersError, top_layer_targets

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "yaml_recipes" / "smollm2-135m-cpu"
TYPES = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_top_layer_targets_name_every_linear_module_of_the_top_layers_only(tiny_model):
    names = top_layer_targets(str(tiny_model), 1)  # the tiny Llama has 2 layers
    assert {n.rsplit(".", 1)[-1] for n in names} == TYPES and all(".layers.1." in n for n in names)
    assert len(top_layer_targets(str(tiny_model), 2)) == 2 * len(TYPES)
    assert [n.rsplit(".", 1)[-1] for n in top_layer_targets(str(tiny_model), 1, "q_proj, v_proj")] == [
        "q_proj",
        "v_proj",
    ]
    with pytest.raises(LoraLayersError, match="between 1 and 2"):
        top_layer_targets(str(tiny_model), 3)
    with pytest.raises(LoraLayersError, match="matches lora_target"):
        top_layer_targets(str(tiny_model), 1, "c_attn")


def test_the_targets_leave_the_lower_layers_without_gradients(tiny_model):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    targets = top_layer_targets(str(tiny_model), 1)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=targets, task_type="CAUSAL_LM"))
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all(".layers.1." in n for n in trainable)
    ids = torch.randint(5, 100, (2, 12))
    peft_model(input_ids=ids, labels=ids).loss.backward()
    lower = [p for n, p in peft_model.named_parameters() if ".layers.0." in n]
    assert lower and all(p.grad is None for p in lower)  # autograd never went below the top layer


def _pipeline(tmp: Path, tiny_model: Path, **extra) -> Path:
    cfg = {
        "run_dir": str(tmp / "run"),
        "model_name_or_path": str(tiny_model),
        "template": "smollm2",
        "recipes": {k: str(RECIPES / f"{k}.yaml") for k in ("a_tuning", "b_tuning", "export")},
        "prepare": small_synthetic_prepare(tmp / "data", mix_anchor_samples=20),
        "overrides": {"a_tuning": FAST_TRAIN, "b_tuning": FAST_TRAIN},
        **extra,
    }
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_pipeline_sets_the_targets_of_new_adapters_only(tmp_path, tiny_model):
    runner = PipelineRunner(load_pipeline(_pipeline(tmp_path, tiny_model, lora_top_layers=1)), log=lambda s: None)
    a = runner.stage_arguments("a_tuning", "beh_atuning_mix", None)
    assert a["lora_target"].split(",") == top_layer_targets(str(tiny_model), 1)
    b = runner.stage_arguments("b_tuning", "beh_btuning", str(tmp_path / "run" / "a_tuning"))
    assert b["lora_target"] == "all"  # a resumed adapter keeps the targets it was trained with
    plain = PipelineRunner(load_pipeline(_pipeline(tmp_path / "p", tiny_model)), log=lambda s: None)
    assert plain.stage_arguments("a_tuning", "beh_atuning_mix", None)["lora_target"] == "all"
    with pytest.raises(ValueError, match="lora_top_layers must be >= 1"):
        load_pipeline(_pipeline(tmp_path / "z", tiny_model, lora_top_layers=0))


def test_the_bench_sets_the_targets_of_new_adapters_too(tmp_path, tiny_model):
    """lora_top_layers lives in the step layer, so a suite gets it exactly as a pipeline does."""
    from behaviorlm_plugin.runs import steps
    from behaviorlm_plugin.runs.bench.context import training_settings
    from behaviorlm_plugin.runs.bench.runner import load_suite

    suite = yaml.safe_load(_pipeline(tmp_path, tiny_model).read_text())
    suite.pop("run_dir")
    suite.update(name="s", cache_dir=str(tmp_path / "c"), lora_top_layers=1)
    suite["variants"] = [{"name": "BehaviorLM", "kind": "behaviorlm", "group": "ours"}]
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    settings = training_settings(load_suite(tmp_path / "suite.yaml"))
    a = steps.train_config(settings, "a_tuning", dataset="bench_x", output_dir="o", seed=0)
    assert a["lora_target"].split(",") == top_layer_targets(str(tiny_model), 1)
    b = steps.train_config(settings, "b_tuning", dataset="bench_y", output_dir="o", init="adapter", seed=0)
    assert b["lora_target"] == "all"


def test_the_cpu_quick_start_trains_its_top_four_layers():
    cfg = load_pipeline(RECIPES / "pipeline.yaml")
    assert cfg.lora_top_layers == 4
    for model in ("llama3.1-8b", "qwen2-1.5b", "llama3.1-70b"):  # the paper's setting on the GPU pipelines
        assert load_pipeline(ROOT / "yaml_recipes" / model / "pipeline.yaml").lora_top_layers is None
