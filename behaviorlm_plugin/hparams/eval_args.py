"""Prediction and evaluation blocks: ``behaviorlm predict``/``evaluate`` and ``evaluation:`` in runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from behaviorlm_plugin.extras.constants import EVAL_SPLITS, TEMPLATE_AUTO
from behaviorlm_plugin.hparams.prior_correction_args import PriorCorrectionArguments, as_prior_correction

PRIOR_CORRECTION_MOVED: dict[str, str] = {
    "head_floor": "prior_correction.head_floor",
    "alpha_grid": "prior_correction.alpha_grid",
}
"""Keys of the prior correction that sat beside it before it became one block (they still load)."""


@dataclass
class SplitCap:
    r"""A seeded subset of one evaluation split (both caps may apply: per class first, then overall)."""

    max_samples: int | None = field(default=None, metadata={"help": "A seeded random subset of N samples."})
    max_per_class: int | None = field(default=None, metadata={"help": "At most N samples per true behavior."})

    def __post_init__(self) -> None:
        for key in ("max_samples", "max_per_class"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1 or None, got {getattr(self, key)}")


@dataclass
class EvaluationArguments:
    r"""Which splits a run scores, and on how many samples.

    Splits:
        splits (any of val, test, test_balanced, val_balanced)
    Caps (per split, for a budget; the same seed gives every row the same samples):
        val, test, test_balanced, val_balanced, seed
    Decision rule (``docs/evaluation.md``):
        prior_correction (alpha: 0 = plain argmax, alpha >= 0, or auto: chosen on val; head_floor, alpha_grid)
    Speed:
        batch_size
    """

    MOVED: ClassVar[dict[str, str]] = PRIOR_CORRECTION_MOVED

    splits: list[str] = field(
        default_factory=lambda: ["test", "test_balanced"], metadata={"help": "Splits to evaluate on."}
    )
    val: SplitCap = field(default_factory=SplitCap, metadata={"help": "Caps on val."})
    test: SplitCap = field(default_factory=SplitCap, metadata={"help": "Caps on test."})
    test_balanced: SplitCap = field(default_factory=SplitCap, metadata={"help": "Caps on test_balanced."})
    val_balanced: SplitCap = field(default_factory=SplitCap, metadata={"help": "Caps on val_balanced."})
    batch_size: int = field(default=4, metadata={"help": "Prompts per forward pass."})
    seed: int = field(default=0, metadata={"help": "Seed of the capped subsets (same for every row and seed)."})
    prior_correction: PriorCorrectionArguments = field(
        default_factory=PriorCorrectionArguments,
        metadata={"help": "Rank by score - alpha * log prior (a bare value is alpha: 0, a number, or auto)."},
    )

    def __post_init__(self) -> None:
        self.prior_correction = pc = as_prior_correction(self.prior_correction)
        if pc.is_auto and pc.choose_on not in self.splits:
            raise ValueError(
                f"prior_correction: auto chooses alpha on {pc.choose_on}; add {pc.choose_on} to splits "
                "(a capped one will do)"
            )
        bad = [s for s in self.splits if s not in EVAL_SPLITS]
        if bad:
            raise ValueError(f"splits: unknown split(s) {bad}; choose from {', '.join(EVAL_SPLITS)}")
        if len(set(self.splits)) != len(self.splits):
            raise ValueError(f"splits: each split once, got {self.splits}")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")

    def cap(self, split: str) -> SplitCap:
        return getattr(self, split)

    def caps(self) -> dict[str, dict]:
        """The evaluated splits' caps, as JSON (step keys, reports)."""
        return {s: {k: v for k, v in vars(self.cap(s)).items() if v is not None} for s in self.splits}


@dataclass
class PredictArguments:
    r"""Arguments of ``behaviorlm predict``.

    Model: model, adapter, template
    Data: data, max_samples, max_per_class, seed
    Output: out, top_k
    Method and speed: method, batch_size, max_length, max_new_tokens, device
    Decision rule: prior_correction, stats, val_preds
    """

    MOVED: ClassVar[dict[str, str]] = {"head_floor": "prior_correction.head_floor"}

    model: str = field(metadata={"help": "Base (or merged) model: HF folder or hub id."})
    data: str = field(metadata={"help": "A prepared split, e.g. data/behavior/test_balanced.jsonl (+ .meta.jsonl)."})
    out: str = field(metadata={"help": "Output preds.jsonl."})
    adapter: str | None = field(default=None, metadata={"help": "LoRA adapter folder (peft) on top of --model."})
    template: str | None = field(
        default=TEMPLATE_AUTO,
        metadata={
            "help": "LLaMA-Factory template used in training (smollm2, llama3, qwen…); 'auto' reads the "
            "default model's marker, else the tokenizer's chat template; 'none' forces the latter."
        },
    )
    top_k: int = field(default=5, metadata={"help": "Ranked candidates to keep per sample (0 = all)."})
    method: Literal["score", "generate"] = field(
        default="score", metadata={"help": "score: exact candidate ranking; generate: greedy text parsed."}
    )
    batch_size: int = field(default=4, metadata={"help": "Prompts per forward pass."})
    max_length: int = field(default=2048, metadata={"help": "Max prompt + answer tokens."})
    max_new_tokens: int = field(default=16, metadata={"help": "Generation length (method=generate)."})
    max_samples: int | None = field(
        default=None, metadata={"help": "A seeded random subset of N samples (kept in file order)."}
    )
    max_per_class: int | None = field(
        default=None, metadata={"help": "At most N samples per true behavior (seeded), e.g. for a quick balanced run."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the subsets above."})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda."})
    prior_correction: PriorCorrectionArguments = field(
        default_factory=PriorCorrectionArguments,
        metadata={
            "help": "Rank by score - alpha * log prior (--prior-correction is its alpha: 0, a number, or auto, "
            "chosen on --val-preds). The prior is --stats' train frequencies."
        },
    )
    stats: str | None = field(
        default=None, metadata={"help": "stats.json of the prior (default: the one beside --data)."}
    )
    val_preds: str | None = field(
        default=None, metadata={"help": "prior_correction auto: val predictions (predict --top-k 0) to choose on."}
    )

    def __post_init__(self) -> None:
        self.prior_correction = as_prior_correction(self.prior_correction)
        if self.prior_correction.active and self.method != "score":
            raise ValueError("--prior-correction re-ranks candidate scores; it needs --method score")
        if self.prior_correction.is_auto and not self.val_preds:
            raise ValueError(
                "--prior-correction auto chooses alpha on val: pass --val-preds (predict val with --top-k 0)"
            )
        if self.top_k < 0:
            raise ValueError("--top_k must be >= 0")
        if self.method not in ("score", "generate"):
            raise ValueError(f"--method must be score or generate, got {self.method!r}")
        for key in ("max_samples", "max_per_class"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ValueError(f"--{key} must be >= 1")
