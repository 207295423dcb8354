"""Frozen-layer reuse in training, measured: SmolLM2-135M, LoRA on the top 4 of 30 layers, the CPU recipe.

Side by side in one run, on the same samples and settings (``tuning/frozen_reuse.py``):

* ``stock``: LLaMA-Factory's trainer as the pipeline runs it (answer-only head, no reuse);
* ``reuse, cold``: the same with the reuse on and an empty cache (the first pass fills it, then the epochs);
* ``reuse, warm``: again, the cache full (what every later seed, learning rate and row on these samples costs).

Each epoch is timed by a trainer callback. ``training_speedup`` is the stock epoch time over the warm reuse epoch
time; ``suite_training`` models a suite's training on these samples (2 epochs x 3 seeds x 2 learning rates) from
the measured epoch and first-pass times.

Scoring, in the same run: 7 adapters of the same shape (LoRA on the same top layers, random weights: the time does
not depend on them) score the same ``test_balanced`` samples, once as one model alone (``CandidateScorer``, the
adapter folded in, as ``behaviorlm evaluate`` scores) and once all 7 with the base model in one pass over the
shared layers (``model/twin.py``, as a bench part scores them). ``scoring_speedup`` is 7 times the one-model time
over the 7-model pass's time; the pass is timed again with the base model's (zero-shot) scores added, as the part
with the zero-shot row runs it.
Writes ``benchmarks/results/frozen_reuse.json``.

    .venv/bin/python benchmarks/bench_frozen_reuse.py --model models/SmolLM2-135M-Instruct --samples 48
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def epoch_timer():
    from transformers import TrainerCallback

    class EpochTimer(TrainerCallback):
        def __init__(self) -> None:
            self.epochs: list[float] = []
            self.begin = 0.0
            self.train_begin = 0.0

        def on_train_begin(self, args, state, control, **kwargs):
            self.train_begin = time.perf_counter()  # after every on_train_begin before it: the reuse's fill

        def on_epoch_begin(self, args, state, control, **kwargs):
            self.begin = time.perf_counter()

        def on_epoch_end(self, args, state, control, **kwargs):
            self.epochs.append(time.perf_counter() - self.begin)

    return EpochTimer()


def train_once(cfg: dict, reuse_dir: str | None) -> dict:
    from llamafactory.train.tuner import run_exp

    from behaviorlm_plugin.tuning.answer_logits import answer_logits_callback
    from behaviorlm_plugin.tuning.frozen_reuse import frozen_reuse_callback

    timer = epoch_timer()
    callbacks = [answer_logits_callback()]
    fill = {"s": 0.0}
    if reuse_dir is not None:
        reuse_cb = frozen_reuse_callback(cfg, reuse_dir, 50.0)
        stock_begin = reuse_cb.on_train_begin

        def timed_begin(*a, **k):
            t0 = time.perf_counter()
            stock_begin(*a, **k)
            fill["s"] = time.perf_counter() - t0

        reuse_cb.on_train_begin = timed_begin
        callbacks.append(reuse_cb)
    callbacks.append(timer)
    t0 = time.perf_counter()
    run_exp(copy.deepcopy(cfg), callbacks=callbacks)
    return {"wall_s": round(time.perf_counter() - t0, 2), "epochs_s": [round(e, 2) for e in timer.epochs],
            "first_pass_s": round(fill["s"], 2)}  # fmt: skip


def random_adapters(model: str, targets: list[str], n: int, folder: Path) -> list[str]:
    """``n`` LoRA adapters on ``targets`` (the recipe's top layers), with random non-zero weights."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    paths = []
    for k in range(n):
        peft_model = get_peft_model(
            AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32),
            LoraConfig(r=8, lora_alpha=16, target_modules=targets),
        )
        torch.manual_seed(k)
        with torch.no_grad():
            for name, param in peft_model.named_parameters():
                if "lora_B" in name:
                    param.normal_(0, 0.02)
        peft_model.save_pretrained(folder / f"adapter{k}")
        paths.append(str(folder / f"adapter{k}"))
    return paths


def scoring_times(model: str, template: str, targets: list[str], data_path: Path, samples: int, work: Path) -> dict:
    """One model alone vs 7 models (and the base) in one shared pass, on the same samples; see the module doc."""
    from behaviorlm_plugin.data.dataset import load_split
    from behaviorlm_plugin.model.scoring import CandidateScorer
    from behaviorlm_plugin.model.twin import twin_scorer

    adapters = random_adapters(model, targets, 7, work)
    recs, metas = load_split(str(data_path), samples, None, 0)
    prompts = [(r.get("system"), r["instruction"]) for r in recs]
    cands = [m["candidates"] for m in metas]
    kw = {"batch_size": 4, "device": "cpu", "show_progress": False, "template": template}

    def timed(scorer) -> tuple[float, list]:
        t0 = time.perf_counter()
        scores = scorer.score_variants(prompts, cands)
        return time.perf_counter() - t0, scores

    one_s, one_scores = timed(CandidateScorer.from_pretrained(model, adapters[0], **kw))
    seven_s, seven_scores = timed(twin_scorer(model, adapters, with_base=False, **kw))
    with_base_s, _ = timed(twin_scorer(model, adapters, **kw))
    gap = max(float(abs(a - b).max()) for a, b in zip(one_scores[0], seven_scores[0], strict=True))
    return {
        "samples": len(prompts),
        "one_model_s": round(one_s, 2),
        "seven_models_one_pass_s": round(seven_s, 2),
        "seven_models_and_base_one_pass_s": round(with_base_s, 2),
        "seven_models_alone_s": round(7 * one_s, 2),
        "seven_models_alone_note": "7 x the one-model time: each model alone is the same work",
        "max_score_gap_first_adapter": gap,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="models/SmolLM2-135M-Instruct")
    p.add_argument("--samples", type=int, default=48, help="Training samples (A-Tuning anchors)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--top-layers", type=int, default=4)
    p.add_argument("--score-samples", type=int, default=48, help="test_balanced samples the scorers rank")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "frozen_reuse.json"))
    a = p.parse_args()

    from behaviorlm_plugin.data.prepare import ensure_prepared
    from behaviorlm_plugin.runs import steps
    from behaviorlm_plugin.runs.pipeline import PipelineRunner, load_pipeline

    pipe = load_pipeline(ROOT / "yaml_recipes" / "smollm2-135m-cpu" / "pipeline.yaml")
    ensure_prepared(pipe.prepare)  # the quick-start's data (5-event history), prepared once
    work = Path(tempfile.mkdtemp(prefix="bench-frozen-reuse-"))
    settings = replace(  # the quick-start pipeline's own training settings, on this model and layer count
        PipelineRunner(pipe).training, model=steps.ModelSpec(a.model, pipe.template), lora_top_layers=a.top_layers
    )
    cfg = steps.train_config(
        settings, "a_tuning", dataset=f"{pipe.name}_train_anchor", output_dir=str(work / "out"), seed=0
    )
    cfg.update(max_samples=a.samples, num_train_epochs=a.epochs, max_steps=-1, plot_loss=False, save_strategy="no")
    load = os.getloadavg()
    targets = cfg["lora_target"].split(",")
    data = Path(pipe.prepare.dataset_dir) / pipe.prepare.name / "test_balanced.jsonl"
    scoring = scoring_times(a.model, pipe.template, targets, data, a.score_samples, work)
    runs = {
        "stock": train_once(cfg, None),
        "reuse_cold": train_once(cfg, str(work / "cache")),
        "reuse_warm": train_once(cfg, str(work / "cache")),
    }
    cache_bytes = sum(f.stat().st_size for f in (work / "cache").rglob("*.npy"))
    shutil.rmtree(work, ignore_errors=True)

    def per_epoch(run: dict) -> float:
        return sum(run["epochs_s"]) / len(run["epochs_s"])

    stock_epoch, warm_epoch = per_epoch(runs["stock"]), per_epoch(runs["reuse_warm"])
    first_pass = runs["reuse_cold"]["first_pass_s"]
    trainings = 3 * 2  # seeds x learning rates, each of a.epochs epochs on the same samples
    suite_stock = trainings * a.epochs * stock_epoch
    suite_reuse = first_pass + trainings * a.epochs * warm_epoch
    result = {
        "command": f"python benchmarks/bench_frozen_reuse.py --model {a.model} --samples {a.samples} "
        f"--epochs {a.epochs} --top-layers {a.top_layers} --score-samples {a.score_samples}",
        "model": a.model,
        "samples": a.samples,
        "epochs": a.epochs,
        "lora_top_layers": a.top_layers,
        "load_average_before": [round(x, 2) for x in load],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "runs": runs,
        "stock_epoch_s": round(stock_epoch, 2),
        "reuse_epoch_s": round(warm_epoch, 2),
        "first_pass_s": first_pass,
        "cache_mb": round(cache_bytes / 1e6, 1),
        "cache_mb_per_sample": round(cache_bytes / 1e6 / a.samples, 3),
        "training_speedup": round(stock_epoch / warm_epoch, 2),
        "suite_training": {
            "what": "2 epochs x 3 seeds x 2 learning rates on these samples, modelled from the measured epoch and "
            "first-pass times",
            "stock_s": round(suite_stock, 1),
            "reuse_s_including_first_pass": round(suite_reuse, 1),
            "speedup": round(suite_stock / suite_reuse, 2),
        },
        "scoring": scoring,
        "scoring_speedup": round(scoring["seven_models_alone_s"] / scoring["seven_models_one_pass_s"], 2),
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("stock_epoch_s", "reuse_epoch_s", "first_pass_s", "training_speedup",
                                               "suite_training", "scoring", "scoring_speedup")}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
