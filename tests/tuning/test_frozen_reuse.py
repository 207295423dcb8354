"""Reuse of the frozen layers' output through LLaMA-Factory's own trainer (run_exp): the same adapters as the stock
forward, with LoRA dropout, gradient accumulation, the answer-only head, two epochs whose batches pad differently,
and B-Tuning continuing an A adapter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from behaviorlm_plugin.hparams.tuning_args import FrozenReuseArguments, RecipeSet, StageOverrides
from behaviorlm_plugin.runs import steps
from behaviorlm_plugin.tuning.frozen_reuse import FrozenCache, FrozenReuse, FrozenReuseError, check_settings

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "yaml_recipes" / "smollm2-135m-cpu"
TRAIN = {
    "max_samples": 9,
    "num_train_epochs": 2,  # the second epoch's batches hold other samples, padded otherwise
    "per_device_train_batch_size": 3,
    "gradient_accumulation_steps": 2,
    "lora_dropout": 0.1,
    "learning_rate": 5.0e-3,
    "warmup_ratio": 0.0,
    "logging_steps": 1,
    "cutoff_len": 1024,
    "plot_loss": False,
}


def _train(tmp: Path, tiny_model: Path, data_dir: Path, stage: str, out: str, *, reuse: bool, init: str | None = None):
    settings = steps.TrainSettings(
        model=steps.ModelSpec(str(tiny_model), "smollm2"),
        recipes=RecipeSet(a_tuning=str(RECIPES / "a_tuning.yaml"), b_tuning=str(RECIPES / "b_tuning.yaml")),
        base_dir=".",
        overrides=StageOverrides(a_tuning=TRAIN, b_tuning=TRAIN),
        dataset_dir=str(data_dir),
        eval_dataset="beh_val",
        lora_top_layers=1,  # the tiny Llama has 2 layers: layer 0 is frozen and served from the cache
    )
    dataset = "beh_train_anchor" if stage == "a_tuning" else "beh_train_tail"
    cfg = steps.train_config(settings, stage, dataset=dataset, output_dir=str(tmp / out), init=init, seed=0)
    flags = FrozenReuseArguments(enabled=reuse, cache_dir=str(tmp / "frozen-cache"))
    steps.train(cfg, tmp / f"{out}.yaml", reuse=flags)
    return load_file(str(tmp / out / "adapter_model.safetensors"))


def _assert_close(a: dict, b: dict, tol: float = 1e-5) -> None:
    assert a.keys() == b.keys() and a
    for k in a:
        assert np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)).max() <= tol, k


def test_reuse_trains_the_same_adapters_as_the_stock_forward(tmp_path, tiny_model, prepared):
    d, _ = prepared
    stock_a = _train(tmp_path, tiny_model, d, "a_tuning", "stock_a", reuse=False)
    reuse_a = _train(tmp_path, tiny_model, d, "a_tuning", "reuse_a", reuse=True)
    _assert_close(stock_a, reuse_a)
    cached = list((tmp_path / "frozen-cache").rglob("*.npy"))
    assert len(cached) == 9  # every training sample's layer-0 output, once
    served = json.loads((tmp_path / "reuse_a" / "frozen_reuse.json").read_text())
    assert served["split"] == 1 and served["served"] == 9 * 2 and served["filled"] == 9  # both epochs from the cache
    # B-Tuning continues the (same) A adapter: the cache fills with the new samples, the old ones are reused.
    stock_b = _train(tmp_path, tiny_model, d, "b_tuning", "stock_b", reuse=False, init=str(tmp_path / "stock_a"))
    reuse_b = _train(tmp_path, tiny_model, d, "b_tuning", "reuse_b", reuse=True, init=str(tmp_path / "stock_a"))
    _assert_close(stock_b, reuse_b)
    assert not np.allclose(stock_b[next(iter(stock_b))], stock_a[next(iter(stock_a))])  # B moved the adapter
    assert json.loads((tmp_path / "reuse_b" / "frozen_reuse.json").read_text())["served"] > 0


class _Config:
    attention_dropout = 0.0


@pytest.mark.parametrize(
    ("cfg", "model_config", "message"),
    [
        ({"packing": True}, _Config(), "packing"),
        ({"neftune_noise_alpha": 5}, _Config(), "NEFTune"),
        ({}, type("C", (), {"attention_dropout": 0.1})(), "attention_dropout"),
    ],
)
def test_settings_it_cannot_serve_exactly_are_refused(cfg, model_config, message):
    with pytest.raises(FrozenReuseError, match=message):
        check_settings(cfg, model_config)


def test_the_fill_reports_its_progress_and_skips_what_is_cached(tmp_path, tiny_model):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model), dtype=torch.float32)
    rng = np.random.default_rng(0)
    dataset = [{"input_ids": rng.integers(3, 50, size=int(rng.integers(4, 12))).tolist()} for _ in range(20)]
    lines: list[str] = []
    reuse = FrozenReuse(model, FrozenCache(tmp_path, "m", 10**9), split=1)
    reuse.fill(dataset, lines.append)
    assert lines[0].endswith("output of 20 samples") and lines[-1].startswith("[frozen-reuse] cached")
    assert [line.split()[1] for line in lines[1:-1]] == ["8/20", "16/20"]  # every 10%, at least a batch apart
    assert all(reuse.cache.has(ex["input_ids"]) for ex in dataset)
    again: list[str] = []
    reuse.fill(dataset, again.append)
    assert again == ["[frozen-reuse] every sample's first 1 layers are cached"]
