"""Training-step throughput: LLaMA-Factory's own SFT trainer against a raw PyTorch + PEFT step.

Both benches (``benchmarks/bench_cpu_step.py`` and ``benchmarks/bench_gpu.py``) time the recipe's step
here.  The LLaMA-Factory side builds exactly what ``llamafactory-cli train`` builds (tokenizer, template,
dataset, model with its patches and LoRA, collator, ``CustomSeq2SeqTrainer``) and times whole optimizer
steps inside ``trainer.train()``; it also records the batches it trained on, so the raw step runs on the
same tokens.  Wall time and this process's CPU time are both kept: on a shared machine the CPU time
says how much work a step was, the wall time how long a user waited.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

# Dense bf16 peak per device, TFLOP/s (vendor sheets); MFU is reported only for devices named here.
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}


@dataclass
class StepTimes:
    """Per optimizer step: wall and CPU seconds, real (non-pad) tokens, padded tokens, label tokens."""

    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    padded_tokens: list[int] = field(default_factory=list)
    label_tokens: list[int] = field(default_factory=list)

    def summary(self, skip: int = 1) -> dict:
        """Medians over the steps after the first ``skip`` (warm-up), and tokens/s over those steps."""
        n = len(self.wall_s)
        keep = slice(min(skip, max(n - 1, 0)), n)
        wall, cpu, tok = self.wall_s[keep], self.cpu_s[keep], self.tokens[keep]
        return {
            "steps_timed": len(wall),
            "step_wall_s": _median(wall),
            "step_cpu_s": _median(cpu),
            "tokens_per_step": _median(tok),
            "padded_tokens_per_step": _median(self.padded_tokens[keep]),
            "label_tokens_per_step": _median(self.label_tokens[keep]),
            "tokens_per_s": (sum(tok) / sum(wall)) if wall and sum(wall) > 0 else None,
            "all_step_wall_s": [round(x, 3) for x in self.wall_s],
        }


def _median(xs: list[float]) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    m = len(s) // 2
    return float(s[m]) if len(s) % 2 else float((s[m - 1] + s[m]) / 2)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _batch_counts(batches: list[dict]) -> tuple[int, int, int]:
    real = sum(int(b["attention_mask"].bool().sum()) for b in batches)
    padded = sum(int(b["input_ids"].numel()) for b in batches)
    labels = sum(int((b["labels"] != -100).sum()) for b in batches)
    return real, padded, labels


def lf_train_steps(args: dict, steps: int) -> tuple[StepTimes, list[dict], dict]:
    """Run ``steps`` optimizer steps of LLaMA-Factory SFT with ``args`` (a recipe dict, paths resolved).

    Returns the per-step times, the micro-batches trained on (CPU tensors, in order) and facts about the
    model LLaMA-Factory built (attention, dtype, gradient checkpointing, threads)."""
    from llamafactory.data import SFTDataCollatorWith4DAttentionMask, get_dataset, get_template_and_fix_tokenizer
    from llamafactory.extras.constants import IGNORE_INDEX
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_model, load_tokenizer
    from llamafactory.train.sft.trainer import CustomSeq2SeqTrainer
    from transformers import TrainerCallback

    cfg = dict(args, max_steps=steps, save_strategy="no", eval_strategy="no", plot_loss=False, report_to="none")
    cfg.pop("eval_dataset", None)
    cfg.pop("load_best_model_at_end", None)
    model_args, data_args, training_args, finetuning_args, _ = get_train_args(cfg)
    tm = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(tm["tokenizer"], data_args)
    dm = get_dataset(template, model_args, data_args, training_args, stage="sft", **tm)
    model = load_model(tm["tokenizer"], model_args, finetuning_args, training_args.do_train)
    collator = SFTDataCollatorWith4DAttentionMask(
        template=template,
        model=model,
        pad_to_multiple_of=8,  # as LLaMA-Factory's run_sft does for training
        label_pad_token_id=IGNORE_INDEX,
        block_diag_attn=model_args.block_diag_attn,
        neat_packing=data_args.neat_packing,
        attn_implementation=getattr(model.config, "_attn_implementation", None),
        compute_dtype=model_args.compute_dtype,
        **tm,
    )
    times, batches, pending = StepTimes(), [], []

    class _Timer(TrainerCallback):
        def on_train_begin(self, *a, **k):
            _sync()
            self.t, self.c = time.perf_counter(), time.process_time()

        def on_step_end(self, *a, **k):
            _sync()
            t, c = time.perf_counter(), time.process_time()
            real, padded, labels = _batch_counts(pending)
            times.wall_s.append(t - self.t)
            times.cpu_s.append(c - self.c)
            times.tokens.append(real)
            times.padded_tokens.append(padded)
            times.label_tokens.append(labels)
            pending.clear()
            self.t, self.c = t, c

    trainer = CustomSeq2SeqTrainer(
        model=model,
        args=training_args,
        finetuning_args=finetuning_args,
        processor=None,
        data_collator=collator,
        callbacks=[_Timer()],
        model_args=model_args,
        train_dataset=dm["train_dataset"],
        tokenizer=tm["tokenizer"],
    )
    inner = trainer.training_step

    def recording_step(model_, inputs, *a, **k):
        b = {key: v.detach().to("cpu").clone() for key, v in inputs.items() if torch.is_tensor(v)}
        batches.append(b)
        pending.append(b)
        return inner(model_, inputs, *a, **k)

    trainer.training_step = recording_step
    trainer.train()
    info = {
        "attn_implementation": getattr(model.config, "_attn_implementation", None),
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "gradient_checkpointing": bool(getattr(model, "is_gradient_checkpointing", False)),
        "torch_threads": torch.get_num_threads(),
        "micro_batch_shapes": [list(b["input_ids"].shape) for b in batches],
    }
    del trainer, model
    return times, batches, info


def raw_train_steps(
    model: torch.nn.Module,
    batches: list[dict],
    accum: int,
    *,
    reps: int = 1,
    lr: float = 1e-4,
) -> StepTimes:
    """Plain forward + backward + AdamW on ``model`` (already LoRA-wrapped) over ``batches``, ``accum``
    micro-batches per optimizer step, ``reps`` passes.  No Trainer, no collator, no callbacks."""
    device = next(model.parameters()).device
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    times = StepTimes()
    for _ in range(reps):
        for s in range(0, len(batches) - accum + 1, accum):
            group = batches[s : s + accum]
            _sync()
            t, c = time.perf_counter(), time.process_time()
            for b in group:
                out = model(
                    input_ids=b["input_ids"].to(device),
                    attention_mask=b["attention_mask"].to(device),
                    labels=b["labels"].to(device),
                )
                (out.loss / accum).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            _sync()
            real, padded, labels = _batch_counts(group)
            times.wall_s.append(time.perf_counter() - t)
            times.cpu_s.append(time.process_time() - c)
            times.tokens.append(real)
            times.padded_tokens.append(padded)
            times.label_tokens.append(labels)
    return times


def lora_model(path_or_config, *, dtype: torch.dtype, device: str, rank: int = 8, alpha: int = 16):
    """A causal LM with LoRA on every linear layer, as the recipes' ``lora_target: all``: real weights from
    a folder, or random ones from a ``PretrainedConfig`` (throughput does not depend on the weights)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, PretrainedConfig

    if isinstance(path_or_config, PretrainedConfig):
        m = AutoModelForCausalLM.from_config(path_or_config, torch_dtype=dtype)
    else:
        m = AutoModelForCausalLM.from_pretrained(path_or_config, torch_dtype=dtype)
    m.config.use_cache = False
    m = m.to(device)
    cfg = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
    return get_peft_model(m, cfg)


def train_flops_per_token(config, *, gradient_checkpointing: bool) -> float:
    """LoRA training FLOPs per token: 2N forward, ~2N backward (activation gradients only; frozen weights
    get none), plus one more forward of 2N when checkpointing recomputes activations.  N counts every
    matmul weight (input embeddings are a lookup; a tied lm_head still multiplies).  Attention's
    sequence-quadratic term is small at these ~500-token prompts and left out."""
    n = _matmul_params(config)
    return (6.0 if gradient_checkpointing else 4.0) * n


def _matmul_params(config) -> float:
    h = config.hidden_size
    inter = config.intermediate_size
    layers = config.num_hidden_layers
    heads = config.num_attention_heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or h // heads
    attn = h * heads * head_dim * 2 + h * kv * head_dim * 2
    mlp = 3 * h * inter
    return float(layers * (attn + mlp) + h * config.vocab_size)


def peak_tflops(device_name: str) -> float | None:
    for key, v in PEAK_TFLOPS.items():
        if key.lower() in device_name.lower():
            return v
    return None


def mfu(tokens_per_s: float | None, flops_per_token: float, peak: float | None) -> float | None:
    if not tokens_per_s or not peak:
        return None
    return tokens_per_s * flops_per_token / (peak * 1e12)
