"""Training blocks shared by the pipeline and the bench: recipes, their overrides, the A-Tuning mix, export checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from behaviorlm_plugin.extras.constants import AUX_RATIO


@dataclass
class RecipeSet:
    r"""The plain LLaMA-Factory YAMLs a run chains (paths relative to the pipeline or suite file)."""

    a_tuning: str = field(metadata={"help": "A-Tuning recipe (llamafactory-cli train YAML)."})
    b_tuning: str = field(metadata={"help": "B-Tuning recipe (llamafactory-cli train YAML)."})
    export: str | None = field(default=None, metadata={"help": "Export recipe (llamafactory-cli export YAML)."})

    def path(self, stage: str, base_dir: str | Path) -> Path:
        rel = getattr(self, stage)
        if rel is None:
            raise ValueError(f"recipes.{stage} is not set; add it to the config")
        return Path(base_dir) / rel


@dataclass
class StageOverrides:
    r"""LLaMA-Factory arguments over a recipe, per stage (they are LLaMA-Factory's own keys, so free-form).

    Precedence: recipe file < these overrides < the keys a run owns (model, template, data, output and
    adapter paths, seed), which an override may not set (see ``tuning.launcher``).
    """

    a_tuning: dict = field(default_factory=dict, metadata={"help": "Over the A-Tuning recipe."})
    b_tuning: dict = field(default_factory=dict, metadata={"help": "Over the B-Tuning recipe."})
    export: dict = field(default_factory=dict, metadata={"help": "Over the export recipe."})

    def of(self, stage: str) -> dict:
        return dict(getattr(self, stage))


@dataclass
class ATuningArguments:
    r"""The A-Tuning mix: anchor samples plus λ general conversations."""

    anchors: int | None = field(
        default=None, metadata={"help": "Use N seeded train_anchor samples (None = all of them)."}
    )
    aux_ratio: float = field(
        default=AUX_RATIO, metadata={"help": "λ: general conversations per anchor sample (paper: 0.05)."}
    )

    def __post_init__(self) -> None:
        if self.anchors is not None and self.anchors < 1:
            raise ValueError(f"anchors must be >= 1 or None, got {self.anchors}")
        if not 0 <= self.aux_ratio <= 10:
            raise ValueError(f"aux_ratio must be in [0, 10], got {self.aux_ratio}")


@dataclass
class ExportCheckArguments:
    r"""How a merged export is checked against base + adapter (see ``tuning.export.verify_export``)."""

    samples: int = field(default=4, metadata={"help": "test_balanced samples scored by both models."})
    tolerance: float = field(default=2e-3, metadata={"help": "float32 exports: max |Δ log-prob| against base+adapter."})
    prob_tolerance: float = field(
        default=0.1, metadata={"help": "bf16/fp16 exports: max |Δ candidate probability| (bf16 noise: 0.03-0.04)."}
    )

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError("samples must be >= 1")


def lora_top_layers_field():
    """``lora_top_layers``, one definition for the pipeline and the bench (the step layer applies it)."""
    return field(
        default=None,
        metadata={
            "help": "LoRA on the top N decoder layers only (None: every layer the recipe's lora_target names). "
            "The backward pass then stops N layers from the top, so a step is cheaper (docs/tuning.md). The CPU "
            "quick-start uses 4 of SmolLM2's 30; the GPU pipelines keep the paper's all layers."
        },
    )


def check_lora_top_layers(value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"lora_top_layers must be >= 1 (or null for every layer), got {value}")


@dataclass
class FrozenReuseArguments:
    r"""Reuse of the frozen layers' output in training (``tuning/frozen_reuse.py``): with LoRA on the top layers
    only, the layers below never change, so their output per sample is computed once and served from a disk cache
    in every later epoch, seed, learning rate and row that trains on that sample. Same loss and gradients as the
    stock forward; off by default (it needs ``lora_top_layers`` to save anything).
    """

    enabled: bool = field(default=False, metadata={"help": "Serve the frozen layers' output from the cache."})
    cache_dir: str = field(
        default="runs/frozen-cache", metadata={"help": "Cache folder (~0.67 MB a sample for SmolLM2 in fp32)."}
    )
    max_gb: float = field(default=20.0, metadata={"help": "Size cap; past it, samples are computed as usual."})

    def __post_init__(self) -> None:
        if not self.max_gb > 0:
            raise ValueError(f"frozen_reuse.max_gb must be > 0, got {self.max_gb}")
