"""LoRA training, candidate scoring and SASRec throughput on one device: benchmarks/results/gpu_throughput.json.

Training rows go through LLaMA-Factory's own SFT trainer (``behaviorlm_plugin.tuning.throughput``), so a
row is what ``llamafactory-cli train`` does with those settings.  Models:

- ``smollm2-135m``: the real SmolLM2 weights (``--model``), with the 1-GPU suite's recipe settings;
- ``qwen2-1.5b`` and ``llama3.1-8b``: random weights from the shipped ``benchmarks/model_configs/*.json``
  (throughput does not depend on the weights), with their shipped A-Tuning recipe's settings less
  DeepSpeed (one device: nothing to shard);
- ``NAME=path/config.json``: any other config (the CPU test uses a tiny one).

Every model is timed with its recipe's settings and with candidate settings (gradient checkpointing off,
the Liger kernel when installed, a larger micro-batch); the fastest is marked ``best``.  All prompts are
tokenised with ``--model``'s tokenizer and ``--template``: tokens/s does not depend on which tokenizer
made the ids, and the larger vocabularies still cost their full lm_head.

Run (GPU): python benchmarks/bench_gpu.py --model models/SmolLM2-135M-Instruct --dataset-dir data
CPU smoke run: add --device cpu --models smollm2-135m --steps 2 --fast-micro-batch 4 --scoring-samples 8
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from behaviorlm_plugin.extras.fileio import atomic_write_json
from behaviorlm_plugin.tuning.throughput import lf_train_steps, mfu, peak_tflops, train_flops_per_token

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "benchmarks/model_configs"
# Targets of the speed issue on one H100/H200, and the ceilings they are read against (tokens/s at 50% MFU
# without checkpointing, from the FLOP arithmetic).
TARGETS = {"smollm2-135m": 150_000, "qwen2-1.5b": 30_000, "llama3.1-8b": 7_000, "scoring_samples_per_s": 1_000}
DROP_FOR_ONE_DEVICE = ("deepspeed", "eval_dataset", "load_best_model_at_end", "metric_for_best_model")


@dataclass(frozen=True)
class ModelSpec:
    recipe: str
    config: str | None  # None: real weights from --model
    fast_micro_batch: int
    recipe_overrides: dict


MODELS = {
    # The 1-GPU suite runs the CPU recipe with these overrides (yaml_recipes/bench/smollm2-1gpu.yaml).
    "smollm2-135m": ModelSpec(
        "yaml_recipes/smollm2-135m-cpu/a_tuning.yaml",
        None,
        64,
        {"use_cpu": False, "bf16": True, "per_device_train_batch_size": 8, "gradient_accumulation_steps": 1},
    ),
    "qwen2-1.5b": ModelSpec("yaml_recipes/qwen2-1.5b/a_tuning.yaml", "qwen2-1.5b.json", 32, {}),
    "llama3.1-8b": ModelSpec("yaml_recipes/llama3.1-8b/a_tuning.yaml", "llama3.1-8b.json", 16, {}),
}


def settings_grid(spec: ModelSpec, fast_mb: int, on_gpu: bool) -> dict[str, dict]:
    """The recipe as shipped, LLaMA-Factory's default checkpointing (the recipes before the speed work), no
    checkpointing, the Liger kernel where installed, and a larger micro-batch."""
    liger = on_gpu and importlib.util.find_spec("liger_kernel") is not None
    grid = {
        "recipe": {},
        "checkpointing_on": {"disable_gradient_checkpointing": False},
        "no_checkpointing": {"disable_gradient_checkpointing": True},
    }
    if liger:
        grid["no_checkpointing_liger"] = {"disable_gradient_checkpointing": True, "enable_liger_kernel": True}
    grid[f"no_checkpointing_micro_batch_{fast_mb}"] = {
        "disable_gradient_checkpointing": True,
        "per_device_train_batch_size": fast_mb,
        "gradient_accumulation_steps": 1,
        **({"enable_liger_kernel": True} if liger else {}),
    }
    return grid


def model_dir(name: str, spec: ModelSpec, config_path: str | None, tokenizer_from: str, tmp: Path) -> tuple[str, bool]:
    """The folder LLaMA-Factory loads: the real model, or a config + tokenizer folder for random weights."""
    if config_path is None and spec.config is None:
        return tokenizer_from, False
    out = tmp / name
    out.mkdir(parents=True, exist_ok=True)
    for f in Path(tokenizer_from).iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "vocab", "merges", "chat_template")):
            shutil.copy(f, out / f.name)
    shutil.copy(config_path or CONFIGS / spec.config, out / "config.json")
    return str(out), True


class _RandomInitOnDevice:
    """LLaMA-Factory's ``train_from_scratch`` builds the model in fp32 on the CPU; an 8B model would take
    minutes to initialise there and train in mixed precision.  Build it in the compute dtype on the device,
    as ``from_pretrained`` would have loaded real weights."""

    def __init__(self, device: str, dtype: torch.dtype) -> None:
        from transformers import AutoModelForCausalLM

        self.cls, self.device, self.dtype = AutoModelForCausalLM, device, dtype

    def __enter__(self):
        self.orig = self.cls.from_config.__func__
        device, dtype, orig = self.device, self.dtype, self.orig

        def from_config(cls, config, **kw):
            kw.setdefault("torch_dtype", dtype)
            with torch.device(device):
                return orig(cls, config, **kw)

        self.cls.from_config = classmethod(from_config)

    def __exit__(self, *exc):
        self.cls.from_config = classmethod(self.orig)


def recipe_args(spec: ModelSpec, a: argparse.Namespace, path: str, random_init: bool, setting: dict) -> dict:
    cfg = yaml.safe_load((ROOT / spec.recipe).read_text("utf-8"))
    for key in DROP_FOR_ONE_DEVICE:
        cfg.pop(key, None)
    cfg.update(spec.recipe_overrides)
    cfg.update(
        model_name_or_path=path,
        template=a.template,
        dataset_dir=a.dataset_dir,
        dataset=a.dataset,
        output_dir=str(Path(tempfile.gettempdir()) / "bench_gpu_out"),
        overwrite_output_dir=True,
        train_from_scratch=random_init,
        include_effective_tokens_per_second=True,
        logging_steps=1000,
    )
    if a.device == "cpu":
        cfg.update(use_cpu=True, bf16=False)
    cfg.update(setting)
    cfg.update(yaml.safe_load(a.extra) if a.extra else {})
    per_step = int(cfg.get("per_device_train_batch_size", 1)) * int(cfg.get("gradient_accumulation_steps", 1))
    cfg["max_samples"] = per_step * a.steps
    return cfg


def train_row(name: str, setting_name: str, cfg: dict, random_init: bool, a: argparse.Namespace) -> dict:
    from transformers import AutoConfig

    print(f"[bench_gpu] train {name} / {setting_name}", flush=True)
    model_config = AutoConfig.from_pretrained(cfg["model_name_or_path"])
    row = {"model": name, "setting": setting_name, "weights": "random" if random_init else "real"}
    row["settings"] = {k: cfg.get(k) for k in _SETTING_KEYS}
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    dtype = torch.bfloat16 if cfg.get("bf16") else torch.float32
    try:
        if random_init:
            with _RandomInitOnDevice("cuda" if a.device != "cpu" and torch.cuda.is_available() else "cpu", dtype):
                times, _, info = lf_train_steps(cfg, a.steps)
        else:
            times, _, info = lf_train_steps(cfg, a.steps)
    except torch.cuda.OutOfMemoryError as e:  # a too-large micro-batch is a result, not a crash
        row["error"] = f"out of memory: {str(e).splitlines()[0]}"
        return row
    finally:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    s = times.summary()
    flops = train_flops_per_token(model_config, gradient_checkpointing=info["gradient_checkpointing"])
    peak = peak_tflops(_device_name(a))
    row.update(s, model_facts={k: v for k, v in info.items() if k != "micro_batch_shapes"})
    row["flops_per_token"] = flops
    row["mfu"] = mfu(s["tokens_per_s"], flops, peak)
    ceiling = 0.5 * peak * 1e12 / train_flops_per_token(model_config, gradient_checkpointing=False) if peak else None
    row["ceiling_tokens_per_s_at_50pct_mfu"] = ceiling
    row["fraction_of_ceiling"] = (s["tokens_per_s"] / ceiling) if ceiling and s["tokens_per_s"] else None
    if torch.cuda.is_available():
        row["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return row


_SETTING_KEYS = (
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "disable_gradient_checkpointing",
    "enable_liger_kernel",
    "bf16",
    "cutoff_len",
    "flash_attn",
)


def _device_name(a: argparse.Namespace) -> str:
    if a.device != "cpu" and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu ({os.cpu_count()} cores)"


def scoring_rows(a: argparse.Namespace) -> list[dict]:
    """Candidate-scoring samples/s on real prompts at a few batch sizes, and exactness against brute force."""
    from behaviorlm_plugin.data.dataset import load_split
    from behaviorlm_plugin.model.scoring import CandidateScorer

    recs, metas = load_split(a.scoring_data, max_per_class=max(1, a.scoring_samples // 35 + 1), seed=0)
    recs, metas = recs[: a.scoring_samples], metas[: a.scoring_samples]
    prompts = [(r["system"], r["instruction"]) for r in recs]
    cands = [m["candidates"] for m in metas]
    on_gpu = a.device != "cpu" and torch.cuda.is_available()
    dtype = "bfloat16" if on_gpu else "float32"
    rows = []
    for bs in [int(x) for x in a.scoring_batch_sizes.split(",")]:
        scorer = CandidateScorer.from_pretrained(
            a.model,
            template=a.template,
            batch_size=bs,
            show_progress=False,
            device="cuda" if on_gpu else "cpu",
            dtype=dtype,
        )
        scorer.score(prompts[:bs], cands[:bs])  # warm-up (kernels, allocator)
        t = time.perf_counter()
        scores = scorer.score(prompts, cands)
        secs = time.perf_counter() - t
        rows.append(
            {
                "batch_size": bs,
                "dtype": dtype,
                "samples": len(prompts),
                "seconds": secs,
                "samples_per_s": len(prompts) / secs,
                "prompt_tokens_mean": float(
                    np.mean(
                        [
                            len(scorer.encode_sample(s, u, c)[0])
                            for (s, u), c in zip(prompts[:16], cands[:16], strict=True)
                        ]
                    )
                ),
                "candidates_per_sample": float(np.mean([len(c) for c in cands])),
            }
        )
        print(f"[bench_gpu] scoring batch {bs}: {rows[-1]['samples_per_s']:.1f} samples/s", flush=True)
    rows[-1]["exactness"] = _exactness(scorer, prompts[:3], cands[:3], scores[:3])
    return rows


def _exactness(scorer, prompts, cands, scores) -> dict:
    """Brute force: each prompt + candidate run from scratch; the largest log-prob gap and argmax agreement."""
    diffs, agree = [], []
    with torch.inference_mode():
        for (system, user), cs, s in zip(prompts, cands, scores, strict=True):
            p, cids = scorer.encode_sample(system, user, cs)
            brute = []
            for c in cids:
                ids = torch.tensor([p + c], device=scorer.device)
                logp = torch.log_softmax(scorer.model(input_ids=ids).logits[0].float(), -1)
                pos = torch.arange(len(p) - 1, len(p) + len(c) - 1, device=scorer.device)
                brute.append(float(logp[pos, torch.tensor(c, device=scorer.device)].sum()))
            diffs.append(float(np.abs(np.array(brute) - s).max()))
            agree.append(int(np.argmax(brute)) == int(np.argmax(s)))
    return {"samples": len(prompts), "max_abs_logprob_diff": max(diffs), "argmax_agrees": all(agree)}


def sasrec_row(a: argparse.Namespace) -> dict:
    from behaviorlm_plugin.baselines.sasrec import load_features, train
    from behaviorlm_plugin.hparams.sasrec_args import SASRecConfig

    d = Path(a.dataset_dir) / a.sasrec_dataset
    tr, va = load_features(d / "train_all.features.npz"), load_features(d / "val.features.npz")
    device = "cuda" if a.device != "cpu" and torch.cuda.is_available() else "cpu"
    cfg = SASRecConfig(max_epochs=a.sasrec_epochs, patience=a.sasrec_epochs, device=device)
    _, info = train(tr, va, cfg)
    n = len(tr) * info["epochs"]
    print(f"[bench_gpu] SASRec: {n / info['seconds']:.0f} samples/s", flush=True)
    return {
        "device": device,
        "train_samples": len(tr),
        "epochs": info["epochs"],
        "seconds": info["seconds"],
        "samples_per_s": n / info["seconds"],
        "batch_size": cfg.batch_size,
    }


def main() -> None:
    a = parse_args()
    start = time.time()
    on_gpu = a.device != "cpu" and torch.cuda.is_available()
    rows, tmp = [], Path(tempfile.mkdtemp(prefix="bench_gpu_models_"))
    for entry in a.models.split(","):
        name, _, config_path = entry.partition("=")
        spec = MODELS.get(name) or ModelSpec(MODELS["qwen2-1.5b"].recipe, config_path, a.fast_micro_batch or 8, {})
        path, random_init = model_dir(name, spec, config_path or None, a.model, tmp)
        grid = settings_grid(spec, a.fast_micro_batch or spec.fast_micro_batch, on_gpu)
        for setting_name, setting in grid.items():
            if a.settings and not any(setting_name.startswith(x) for x in a.settings.split(",")):
                continue
            rows.append(train_row(name, setting_name, recipe_args(spec, a, path, random_init, setting), random_init, a))
    shutil.rmtree(tmp, ignore_errors=True)
    result = summarise(a, rows, scoring_rows(a), sasrec_row(a), time.time() - start)
    atomic_write_json(Path(a.out), result)
    print(json.dumps(result["summary"], indent=1))
    print(f"[bench_gpu] wrote {a.out} in {time.time() - start:.0f} s")


def summarise(a, train: list[dict], scoring: list[dict], sasrec: dict, seconds: float) -> dict:
    best = {}
    for r in train:
        if r.get("tokens_per_s") and r["tokens_per_s"] > best.get(r["model"], {}).get("tokens_per_s", 0):
            best[r["model"]] = r
    for r in train:
        r["best"] = best.get(r["model"]) is r
    summary = {
        m: {
            "best_setting": r["setting"],
            "tokens_per_s": r["tokens_per_s"],
            "mfu": r["mfu"],
            "fraction_of_ceiling": r["fraction_of_ceiling"],
            "target_tokens_per_s": TARGETS.get(m),
            "met": (r["tokens_per_s"] >= TARGETS[m]) if m in TARGETS else None,
        }
        for m, r in best.items()
    }
    top = max(scoring, key=lambda r: r["samples_per_s"])
    summary["scoring"] = {
        "samples_per_s": top["samples_per_s"],
        "batch_size": top["batch_size"],
        "target": TARGETS["scoring_samples_per_s"],
        "met": top["samples_per_s"] >= TARGETS["scoring_samples_per_s"],
    }
    summary["sasrec_samples_per_s"] = sasrec["samples_per_s"]
    import llamafactory
    import peft
    import transformers

    return {
        "device": _device_name(a),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "llamafactory": llamafactory.__version__,
            "cuda": torch.version.cuda,
            "liger_kernel": _version("liger_kernel"),
            "flash_attn": _version("flash_attn"),
        },
        "platform": platform.platform(),
        "command": "python benchmarks/bench_gpu.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(a).items() if v is not None),
        "summary": summary,
        "training": train,
        "scoring": scoring,
        "sasrec": sasrec,
        "targets": TARGETS,
        "seconds": seconds,
        "notes": "Training rows use LLaMA-Factory's SFT trainer; random-weight rows build the shipped configs; "
        "all prompts use --model's tokenizer and --template. MFU counts 4N FLOPs/token (6N with "
        "gradient checkpointing), N = matmul weights; the ceiling is 50% MFU without checkpointing.",
    }


def _version(pkg: str) -> str | None:
    try:
        import importlib.metadata as md

        return md.version(pkg.replace("_", "-"))
    except Exception:
        return None


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models/SmolLM2-135M-Instruct", help="real weights + the tokenizer of all rows")
    ap.add_argument("--template", default="smollm2")
    ap.add_argument("--dataset-dir", default="data")
    ap.add_argument("--dataset", default="behavior_train_all", help="a registered SFT dataset (real prompts)")
    ap.add_argument("--models", default="smollm2-135m,qwen2-1.5b,llama3.1-8b", help="names, or NAME=config.json")
    ap.add_argument("--steps", type=int, default=6, help="optimizer steps per row (the first is warm-up)")
    ap.add_argument("--settings", default=None, help="only the settings whose names start with these (a,b,…)")
    ap.add_argument("--fast-micro-batch", type=int, default=None, help="override every model's larger micro-batch")
    ap.add_argument("--scoring-data", default="data/behavior/test_balanced.jsonl")
    ap.add_argument("--scoring-samples", type=int, default=1024)
    ap.add_argument("--scoring-batch-sizes", default="4,64,256")
    ap.add_argument("--sasrec-dataset", default="behavior", help="prepared dataset folder under --dataset-dir")
    ap.add_argument("--sasrec-epochs", type=int, default=3)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu"])
    ap.add_argument("--extra", default=None, help="YAML mapping over every training row (tests)")
    ap.add_argument("--out", default="benchmarks/results/gpu_throughput.json")
    return ap.parse_args()


if __name__ == "__main__":
    main()
