"""Bench variant kinds, as a registry (PEFT ``register_peft_method`` style).

A kind says what data its first LoRA stage trains on (or none) and whether selection and
B-Tuning follow; the runner does the rest (train, select, evaluate, all through the step cache).
Adding a kind is one function and one :func:`register_variant_kind` call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from behaviorlm_plugin.hparams.bench_args import VariantConfig
from behaviorlm_plugin.runs.bench import cached_steps
from behaviorlm_plugin.runs.bench.cache import Step
from behaviorlm_plugin.runs.bench.context import BenchContext
from behaviorlm_plugin.runs.bench.model_free import oracle_step

Stage1 = Callable[[BenchContext, VariantConfig, int, "int | None"], "Step | None"]
"""(context, variant, seed, ours' sample count at that seed when the row is ``matched``, else None) -> the step
holding the first stage's data, or None (no stage 1)."""
Evaluator = Callable[[BenchContext], Step]
"""(context) -> a step with ``<split>/preds.jsonl`` and ``info["metrics"]``, like the bench's ``eval`` step."""


@dataclass(frozen=True)
class VariantKind:
    name: str
    stage1: Stage1
    b_tuning: bool
    """Selection + B-Tuning follow stage 1 (continuing its adapter, or the base model when there is none)."""
    can_skip_a_tuning: bool = False
    description: str = ""
    evaluator: Evaluator | None = None
    """Scores the evaluation samples without a model (the oracle); stage1 and b_tuning are then unused."""


_KINDS: dict[str, VariantKind] = {}


def register_variant_kind(
    *,
    name: str,
    stage1: Stage1,
    b_tuning: bool,
    can_skip_a_tuning: bool = False,
    description: str = "",
    evaluator: Evaluator | None = None,
    overwrite: bool = False,
) -> VariantKind:
    """Add a variant kind; a duplicate name is refused unless ``overwrite``."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"variant kind name must be an identifier-like string, got {name!r}")
    if not callable(stage1):
        raise TypeError(f"variant kind {name!r}: stage1 must be callable, got {type(stage1).__name__}")
    if not isinstance(b_tuning, bool):
        raise TypeError(f"variant kind {name!r}: b_tuning must be a bool")
    if name in _KINDS and not overwrite:
        raise ValueError(f"variant kind {name!r} is already registered; pass overwrite=True to replace it")
    kind = VariantKind(name, stage1, b_tuning, can_skip_a_tuning, description, evaluator)
    _KINDS[name] = kind
    return kind


def get_variant_kind(name: str) -> VariantKind:
    if name not in _KINDS:
        raise ValueError(f"unknown variant kind {name!r}; registered: {', '.join(kind_names())}")
    return _KINDS[name]


def kind_names() -> tuple[str, ...]:
    return tuple(sorted(_KINDS))


def check_variant_kinds(variants: list[VariantConfig]) -> None:
    """Each variant's kind is registered, and ``skip_a_tuning`` is set only where its kind allows it: checked
    where the kinds are used, when a suite is loaded, so a plugin's kind counts and a typo fails before any step."""
    for v in variants:
        if v.kind not in _KINDS:
            raise ValueError(f"variant {v.name!r}: kind must be one of {', '.join(kind_names())}; got {v.kind!r}")
        if v.skip_a_tuning and not _KINDS[v.kind].can_skip_a_tuning:
            raise ValueError(f"variant {v.name!r}: skip_a_tuning only applies to kind behaviorlm")


# ----------------------------------------------------------------------------- built-in kinds
def _no_stage1(ctx, v, seed, matched):
    return None


def _anchor_mix(ctx, v, seed, matched):
    if v.skip_a_tuning:
        return None
    return cached_steps.mix(ctx, v.a_tuning.anchors, v.a_tuning.aux_ratio, seed)


def _natural_subset(ctx, v, seed, matched):
    n = matched if v.train_samples == "matched" else v.train_samples
    return cached_steps.subset(ctx, "train_all", int(n), seed)


def _rare_first(ctx, v, seed, matched):
    # The rarer behaviors (metric categories medium + tail), as many as A-Tuning's anchors.
    n = v.a_tuning.anchors or ctx.data.stats.samples_written["train_anchor"]
    return cached_steps.subset(ctx, "train_all", n, seed, categories=("medium", "tail"))


register_variant_kind(name="zero_shot", stage1=_no_stage1, b_tuning=False, description="the base model (NT)")
register_variant_kind(name="anchor_only", stage1=_anchor_mix, b_tuning=False, description="A-Tuning alone")
register_variant_kind(
    name="behaviorlm",
    stage1=_anchor_mix,
    b_tuning=True,
    can_skip_a_tuning=True,
    description="A-Tuning, then selection and B-Tuning",
)
register_variant_kind(
    name="full_ft", stage1=_natural_subset, b_tuning=False, description="one stage on a natural subset"
)
register_variant_kind(
    name="reverse", stage1=_rare_first, b_tuning=True, description="medium+tail first, then the B-Tuning set"
)


register_variant_kind(
    name="oracle",
    stage1=_no_stage1,
    b_tuning=False,
    evaluator=oracle_step,
    description="the simulator's true next-behavior distribution (synthetic data only): a clairvoyant ceiling",
)
