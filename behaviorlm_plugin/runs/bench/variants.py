"""Bench variant kinds, as a registry (PEFT ``register_peft_method`` style).

A kind says what data its first LoRA stage trains on (or none) and whether selection and
B-Tuning follow; the runner does the rest (train, select, evaluate, all through the step cache).
Adding a kind is one function and one :func:`register_variant_kind` call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from behaviorlm_plugin.hparams.bench_args import VariantConfig
from behaviorlm_plugin.runs.bench import cached_steps
from behaviorlm_plugin.runs.bench.cache import Step
from behaviorlm_plugin.runs.bench.context import BenchContext
from behaviorlm_plugin.runs.bench.logreg_steps import logreg_row
from behaviorlm_plugin.runs.bench.model_free import hour_place_step, oracle_step


@dataclass(frozen=True)
class Given:
    """What the runner knows that a stage-1 function may need."""

    matched: int | None = None
    """``ours``' training-sample count at this seed, when the row says ``train_samples: matched``."""
    learning_rates: Mapping[str, float] = field(default_factory=dict)
    """The learning-rate search's winners by target (``a_tuning``, ``full_ft``), when a search ran."""


Stage1 = Callable[[BenchContext, VariantConfig, int, Given], "Step | list[Step] | None"]
"""(context, variant, seed, given) -> the step holding the first stage's data (several: trained on together), or
None (no stage 1)."""
Scorer = Callable[[BenchContext, VariantConfig, int, "int | None"], Step]
"""(context, variant, seed, ours' sample count when the row is ``matched``) -> an evaluation-like step of a row
that trains no LLM (the logistic regression): ``<split>/preds.jsonl``, ``info["metrics"]``,
``info["train_samples"]``."""
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
    takes_train_samples: bool = False
    """The row names its sample count (``train_samples``: an int, or ``matched`` to ``ours``)."""
    scorer: Scorer | None = None
    """Trains and scores a row without an LLM; stage1 and b_tuning are then unused."""


_KINDS: dict[str, VariantKind] = {}


def register_variant_kind(
    *,
    name: str,
    stage1: Stage1,
    b_tuning: bool,
    can_skip_a_tuning: bool = False,
    description: str = "",
    evaluator: Evaluator | None = None,
    takes_train_samples: bool = False,
    scorer: Scorer | None = None,
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
    kind = VariantKind(name, stage1, b_tuning, can_skip_a_tuning, description, evaluator, takes_train_samples, scorer)
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
        kind = _KINDS[v.kind]
        if (v.kind == "oracle") != (v.group == "oracle"):
            raise ValueError(f"variant {v.name!r}: kind oracle and group oracle go together")
        if v.skip_a_tuning and not kind.can_skip_a_tuning:
            raise ValueError(f"variant {v.name!r}: skip_a_tuning only applies to kind behaviorlm")
        if kind.takes_train_samples:
            ok = v.train_samples == "matched" or (isinstance(v.train_samples, int) and v.train_samples > 0)
            if not ok:
                raise ValueError(
                    f"variant {v.name!r}: {v.kind} needs train_samples: a positive int or 'matched', "
                    f"got {v.train_samples!r}"
                )
        elif v.train_samples is not None:
            takers = ", ".join(k for k in kind_names() if _KINDS[k].takes_train_samples)
            raise ValueError(f"variant {v.name!r}: train_samples only applies to kinds {takers}")


def check_rows_against_data(ctx: BenchContext, variants: list[VariantConfig]) -> None:
    """What only the prepared data can tell, checked before any step: a class-balanced row needs at least one
    sample per behavior."""
    n_behaviors = len(ctx.data.stats.behavior_list)
    for v in variants:
        if v.kind == "balanced_ft" and isinstance(v.train_samples, int) and v.train_samples < n_behaviors:
            raise ValueError(
                f"variant {v.name!r}: balanced_ft with train_samples {v.train_samples} cannot give each of the "
                f"{n_behaviors} behaviors a sample; give at least {n_behaviors} (or matched)"
            )


# ----------------------------------------------------------------------------- built-in kinds
def _no_stage1(ctx, v, seed, given):
    return None


def _anchor_mix(ctx, v, seed, given):
    if v.skip_a_tuning:
        return None
    return cached_steps.mix(ctx, v.a_tuning.anchors, v.a_tuning.aux_ratio, ctx.data_seed(seed))


def _count(v: VariantConfig, given: Given) -> int:
    return int(given.matched if v.train_samples == "matched" else v.train_samples)


def _natural_subset(ctx, v, seed, given):
    return cached_steps.subset(ctx, "train_all", _count(v, given), ctx.data_seed(seed))


def _balanced_subset(ctx, v, seed, given):
    return cached_steps.balanced_subset(ctx, "train_all", _count(v, given), ctx.data_seed(seed))


def _ours_data(ctx, v, seed, given):
    """Exactly what ``ours`` trains on at this seed, in one stage: its A-Tuning mix and its B-Tuning set (picked by
    its own A-Tuned model). Every step is ``ours``' own, so with ``ours`` run this costs one training run."""
    ours = ctx.suite.variant(ctx.suite.ours)
    mix = cached_steps.mix(ctx, ours.a_tuning.anchors, ours.a_tuning.aux_ratio, ctx.data_seed(seed))
    a_model = cached_steps.train(ctx, "a_tuning", mix, None, seed, lr=given.learning_rates.get("a_tuning"))
    picked = cached_steps.select(ctx, a_model, ours.selection, ctx.data_seed(seed))
    return [mix, picked]


def _rare_first(ctx, v, seed, given):
    # The rarer behaviors (metric categories medium + tail), as many as A-Tuning's anchors.
    n = v.a_tuning.anchors or ctx.data.stats.samples_written["train_anchor"]
    return cached_steps.subset(ctx, "train_all", n, ctx.data_seed(seed), categories=("medium", "tail"))


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
    name="full_ft",
    stage1=_natural_subset,
    b_tuning=False,
    takes_train_samples=True,
    description="one stage on a natural subset",
)
register_variant_kind(
    name="balanced_ft",
    stage1=_balanced_subset,
    b_tuning=False,
    takes_train_samples=True,
    description="one stage on a class-balanced subset of the same pool (equal counts per behavior)",
)
register_variant_kind(
    name="one_stage",
    stage1=_ours_data,
    b_tuning=False,
    description="one stage on exactly ours' data (its A-Tuning mix plus its B-Tuning set): no curriculum",
)
register_variant_kind(
    name="reverse", stage1=_rare_first, b_tuning=True, description="medium+tail first, then the B-Tuning set"
)


register_variant_kind(
    name="logreg",
    stage1=_no_stage1,
    b_tuning=False,
    takes_train_samples=True,
    scorer=logreg_row,
    description="a logistic regression on the prompt's facts, one-hot (next place, hour, day, last behaviors and "
    "place), on the natural subset full fine-tuning gets: the classical same-budget row",
)


def _hour_place_row(ctx, v, seed, matched):
    return hour_place_step(ctx)  # the same at every seed: the rule has no randomness


register_variant_kind(
    name="hour_place",
    stage1=_no_stage1,
    b_tuning=False,
    scorer=_hour_place_row,
    description="the hour+place rule: the most frequent behavior of the next event's (hour, place) in all of train_all",
)
register_variant_kind(
    name="oracle",
    stage1=_no_stage1,
    b_tuning=False,
    evaluator=oracle_step,
    description="the simulator's true next-behavior distribution (synthetic data only): a clairvoyant ceiling",
)
