"""The CPU recipe's LoRA step against a raw PyTorch + PEFT step on the same batches, in one run.

Writes benchmarks/results/cpu_throughput.json.  For each recipe setting (the recipe as shipped before
the speed work, ``before``; the recipe as shipped now, ``after``; and single-change ablations with
``--ablations``) it runs LLaMA-Factory's own SFT trainer for ``--steps`` optimizer steps, records the
batches it trained on, then runs the raw step (plain model + PEFT LoRA + AdamW, no Trainer) on exactly
those batches.  The first step of each is warm-up.  The ratio of a recipe's step to the raw step is
taken on CPU time (this process, all threads) and on wall time; on a shared machine the CPU time is the
steadier of the two, so the script pins one torch thread by default (``--threads``), where CPU time is
the work done and cannot include spin-waiting for a descheduled sibling thread.

Run: .venv/bin/python benchmarks/bench_cpu_step.py --model models/SmolLM2-135M-Instruct \
        --dataset-dir data --dataset behavior_atuning_mix [--steps 3 --threads 1 --ablations]
(~8 min on 2 quiet cores with one thread; prepare the dataset first as `make quickstart` does.)
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch
import yaml

from behaviorlm_plugin.extras.fileio import atomic_write_json
from behaviorlm_plugin.tuning.throughput import lf_train_steps, lora_model, raw_train_steps

RECIPE = Path(__file__).resolve().parents[1] / "yaml_recipes/smollm2-135m-cpu/a_tuning.yaml"
# The speed-relevant keys of the CPU recipe as shipped before the speed work (commit 536962e); every
# other key is the recipe's own, so `before` and `after` differ only where the speed work changed them.
BEFORE = {"disable_gradient_checkpointing": False}
ABLATIONS = {
    "gradient_checkpointing_off": {"disable_gradient_checkpointing": True},
    "logging_every_10_steps": {"logging_steps": 10},
    "eager_attention": {"flash_attn": "disabled"},
}


def recipe_args(model: str, dataset_dir: str, dataset: str, steps: int) -> dict:
    cfg = yaml.safe_load(RECIPE.read_text("utf-8"))
    per_step = int(cfg.get("per_device_train_batch_size", 1)) * int(cfg.get("gradient_accumulation_steps", 1))
    cfg.update(
        model_name_or_path=model,
        dataset_dir=dataset_dir,
        dataset=dataset,
        output_dir=str(Path(os.environ.get("TMPDIR", "/tmp")) / "bench_cpu_step"),
        # Enough rows for the timed steps, no more: tokenising the whole mix would dominate the run.
        max_samples=steps * per_step,
        overwrite_output_dir=True,
    )
    return cfg


def measure(name: str, args: dict, model_path: str, steps: int) -> dict:
    print(f"[bench_cpu_step] {name}: LLaMA-Factory, {steps} steps", flush=True)
    lf, batches, info = lf_train_steps(args, steps)
    accum = int(args.get("gradient_accumulation_steps", 1))
    print(f"[bench_cpu_step] {name}: raw PyTorch + PEFT on the same {len(batches)} micro-batches", flush=True)
    raw_model = lora_model(model_path, dtype=torch.float32, device="cpu", rank=args["lora_rank"])
    raw = raw_train_steps(raw_model, batches, accum, lr=float(args["learning_rate"]))
    lf_s, raw_s = lf.summary(), raw.summary()
    row = {
        "settings": {k: args.get(k) for k in ("disable_gradient_checkpointing", "logging_steps", "flash_attn")},
        "model_facts": info,
        "recipe_step": lf_s,
        "raw_step": raw_s,
        "ratio_recipe_over_raw_cpu": _ratio(lf_s["step_cpu_s"], raw_s["step_cpu_s"]),
        "ratio_recipe_over_raw_wall": _ratio(lf_s["step_wall_s"], raw_s["step_wall_s"]),
    }
    print(
        f"[bench_cpu_step] {name}: recipe {lf_s['step_cpu_s']:.1f} s CPU / {lf_s['step_wall_s']:.1f} s wall, "
        f"raw {raw_s['step_cpu_s']:.1f} / {raw_s['step_wall_s']:.1f}, ratio (CPU) {row['ratio_recipe_over_raw_cpu']}",
        flush=True,
    )
    return row


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models/SmolLM2-135M-Instruct")
    ap.add_argument("--dataset-dir", default="data")
    ap.add_argument("--dataset", default="behavior_atuning_mix")
    ap.add_argument("--steps", type=int, default=3, help="optimizer steps per setting (the first is warm-up)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: CPU time = work, see docstring)")
    ap.add_argument("--ablations", action="store_true", help="also time single changes from `before`")
    ap.add_argument("--extra", default=None, help="YAML mapping over the recipe, for a tiny-model test run")
    ap.add_argument("--out", default="benchmarks/results/cpu_throughput.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    start = time.time()
    base = recipe_args(a.model, a.dataset_dir, a.dataset, a.steps)
    base.update(yaml.safe_load(a.extra) if a.extra else {})
    rows = {"before": measure("before", {**base, **BEFORE}, a.model, a.steps)}
    rows["after"] = measure("after", base, a.model, a.steps)
    if a.ablations:
        for name, change in ABLATIONS.items():
            rows[name] = measure(name, {**base, **BEFORE, **change}, a.model, a.steps)
    after, before = rows["after"], rows["before"]
    result = {
        "what": "CPU recipe LoRA step (LLaMA-Factory SFT trainer) vs raw PyTorch+PEFT step on the same batches",
        "command": "python benchmarks/bench_cpu_step.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(a).items() if v not in (None, False, True))
        + (" --ablations" if a.ablations else ""),
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": a.threads,
            "load_average_at_end": list(os.getloadavg()),
            "platform": platform.platform(),
            "torch": torch.__version__,
        },
        "recipe": str(RECIPE.relative_to(RECIPE.parents[2])),
        "before_settings": BEFORE,
        "ratio_recipe_over_raw": after["ratio_recipe_over_raw_cpu"],
        "ratio_recipe_before_over_raw": before["ratio_recipe_over_raw_cpu"],
        "speedup_after_vs_before_cpu": _ratio(
            before["recipe_step"]["step_cpu_s"] / before["recipe_step"]["tokens_per_step"],
            after["recipe_step"]["step_cpu_s"] / after["recipe_step"]["tokens_per_step"],
        ),
        "rows": rows,
        "wall_s": round(time.time() - start, 1),
    }
    atomic_write_json(Path(a.out), result)
    print(
        f"[bench_cpu_step] wrote {a.out}: recipe/raw {result['ratio_recipe_over_raw']} (before: "
        f"{result['ratio_recipe_before_over_raw']})"
    )


if __name__ == "__main__":
    main()
