"""A ``suite.yaml``: the benchmark's rows (variants, ablations, sweeps, SASRec) over seeds (``behaviorlm bench``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

from behaviorlm_plugin.hparams.bench_plan_args import PartConfig, TimeModel
from behaviorlm_plugin.hparams.data_args import PrepareArguments
from behaviorlm_plugin.hparams.eval_args import PRIOR_CORRECTION_MOVED, EvaluationArguments
from behaviorlm_plugin.hparams.parser import ConfigError
from behaviorlm_plugin.hparams.prior_correction_args import PriorCorrectionArguments, as_prior_correction
from behaviorlm_plugin.hparams.sasrec_args import DEFAULT_SASREC_GRID, SASRecConfig, check_grid
from behaviorlm_plugin.hparams.selection_args import SelectionArguments
from behaviorlm_plugin.hparams.tuning_args import (
    ATuningArguments,
    FrozenReuseArguments,
    RecipeSet,
    StageOverrides,
    check_lora_top_layers,
    lora_top_layers_field,
)

Group = Literal["baseline", "ours", "ablation", "sweep", "oracle"]


@dataclass
class SweepPoint:
    """The one setting a sweep row changes against ``ours``: rows carry it, nothing parses a name."""

    param: Literal["aux_ratio", "k", "anchors"]
    value: float


@dataclass
class VariantConfig:
    r"""One row of the report.

    kind:
        a registered variant kind (``runs.bench.variants``): ``zero_shot`` (the paper's NT),
        ``anchor_only`` (A-Tuning alone), ``behaviorlm`` (A then B; ablations change its blocks),
        ``full_ft`` (one stage on a natural subset of train_all), ``balanced_ft`` (one stage on a class-balanced
        subset of the same pool), ``one_stage`` (one stage on exactly ours' A-mix plus B-set) and ``reverse``
        (medium+tail first).
    group:
        ``baseline`` rows are compared with ``ours``; ``ablation`` rows get deltas against it;
        ``sweep`` rows feed the sweep plots; ``oracle`` rows (kind oracle) are the ceiling, shown in the main
        table but never a "best baseline".
    a_tuning, selection:
        the suite's blocks with this row's keys on top (resolved when the suite is built).
    """

    name: str = field(metadata={"help": "Row name in the report."})
    kind: str = field(metadata={"help": "A registered variant kind."})
    group: Group = field(default="ablation", metadata={"help": "baseline, ours, ablation or sweep."})
    a_tuning: ATuningArguments = field(default_factory=ATuningArguments, metadata={"help": "The A-Tuning mix."})
    selection: SelectionArguments = field(default_factory=SelectionArguments, metadata={"help": "B-Tuning pick."})
    skip_a_tuning: bool = field(default=False, metadata={"help": "The paper's 'w/o A-Tuning' (kind behaviorlm)."})
    train_samples: int | str | None = field(
        default=None,
        metadata={"help": "full_ft, balanced_ft: a positive int, or 'matched' (as many as ours' two stages)."},
    )
    seeds: list[int] | None = field(default=None, metadata={"help": "A subset of the suite's seeds (None = all)."})
    prior_correction: PriorCorrectionArguments = field(
        default_factory=PriorCorrectionArguments,
        metadata={
            "help": "This row's prior correction (a bare value is alpha: 0, a number, or auto, chosen on val); "
            "a re-rank of the saved predictions, so it shares every step with the alpha-0 row. head_floor and "
            "alpha_grid default to evaluation.prior_correction's."
        },
    )
    description: str = field(default="", metadata={"help": "One line for the report."})
    sweep: SweepPoint | None = field(default=None, metadata={"internal": True, "help": "Set on sweep rows."})

    def __post_init__(self) -> None:
        self.prior_correction = as_prior_correction(self.prior_correction)
        # ``kind`` is checked against the registry where it is used (runs.bench.variants.check_variant_kinds,
        # when the suite is loaded): skip_a_tuning against the kind there too.
        # train_samples is checked against the kind where kinds are known (runs.bench.variants.check_variant_kinds).
        if self.train_samples is not None and not (
            self.train_samples == "matched" or (isinstance(self.train_samples, int) and self.train_samples > 0)
        ):
            raise ValueError(
                f"variant {self.name!r}: train_samples must be a positive int or 'matched', got {self.train_samples!r}"
            )


@dataclass
class SweepArguments:
    r"""Rows equal to ``ours`` but for one setting each."""

    aux_ratio: list[float] = field(default_factory=list, metadata={"help": "λ values."})
    k: list[int] = field(default_factory=list, metadata={"help": "Samples per behavior in B-Tuning."})
    anchors: list[int] = field(
        default_factory=list, metadata={"help": "A-Tuning anchor counts (BehaviorLM's sample-efficiency curve)."}
    )
    seeds: list[int] | None = field(default=None, metadata={"help": "Seeds of the sweep rows (None = all)."})


@dataclass
class SASRecBench:
    r"""The SASRec baseline inside a suite.

    grid: searched once per seed on the full train_all (best val accuracy wins);
    config: the fixed settings around the grid; train_sizes: the sample-efficiency curve, trained
    with the searched config (no per-size search).
    """

    MOVED: ClassVar[dict[str, str]] = {"post_hoc": "prior_correction_row"}

    enabled: bool = field(default=True, metadata={"help": "Run SASRec."})
    grid: dict[str, list] = field(default_factory=lambda: dict(DEFAULT_SASREC_GRID), metadata={"help": "Search."})
    config: SASRecConfig = field(default_factory=SASRecConfig, metadata={"help": "Fixed settings."})
    train_sizes: list[int] = field(default_factory=list, metadata={"help": "Sample-efficiency curve sizes."})
    prior_correction_row: bool = field(
        default=False,
        metadata={"help": "Add 'SASRec + prior correction' (alpha auto, chosen on val; needs val in the splits)."},
    )
    logit_adjusted_loss: bool = field(
        default=False, metadata={"help": "Add 'SASRec (logit-adjusted loss)', trained with the searched settings."}
    )

    def __post_init__(self) -> None:
        check_grid(self.grid, "sasrec.grid")
        if any(n < 1 for n in self.train_sizes):
            raise ValueError("sasrec.train_sizes must be positive")


@dataclass
class LRSearch:
    r"""A small learning-rate search for the LLM rows, as SASRec gets one: run once, at ``seed``, and the winner
    (the best ``metric`` on ``split``) is reused by every row and seed of that target.

    targets: ``full_ft`` (the one-stage rows: full_ft, balanced_ft, one_stage), ``a_tuning`` (A-Tuning of
    anchor_only, behaviorlm and reverse rows) and ``b_tuning`` (their B-Tuning, searched after A-Tuning's winner;
    without it B-Tuning keeps its recipe's rate).
    Where the choice is made: ``split: val`` and ``metric: accuracy`` (natural accuracy, the default of earlier
    suites), or ``split: val_balanced`` and ``metric: acc_avg`` (every behavior counted, the tail's metric).
    """

    values: list[float] = field(default_factory=lambda: [1e-4, 3e-4, 1e-3], metadata={"help": "Learning rates."})
    targets: list[Literal["full_ft", "a_tuning", "b_tuning"]] = field(
        default_factory=lambda: ["full_ft", "a_tuning"], metadata={"help": "What the search tunes."}
    )
    seed: int = field(default=0, metadata={"help": "The one seed the search runs at."})
    split: Literal["val", "val_balanced"] = field(default="val", metadata={"help": "The split the winner is read on."})
    metric: Literal["accuracy", "acc_avg"] = field(
        default="accuracy", metadata={"help": "The winner's metric: accuracy (natural) or acc_avg (class mean)."}
    )

    def __post_init__(self) -> None:
        if not self.values or any(v <= 0 for v in self.values):
            raise ValueError(f"lr_search.values must be positive learning rates, got {self.values}")
        if not self.targets:
            raise ValueError("lr_search.targets: name full_ft, a_tuning and/or b_tuning")
        if "b_tuning" in self.targets and "a_tuning" not in self.targets:
            raise ValueError("lr_search.targets: b_tuning is searched on A-Tuning's winner; add a_tuning")


@dataclass
class PrimaryComparison:
    r"""A pre-registered comparison of ``ours`` with a row (the suite file's commit is the pre-registration;
    Holm over all of them). ``tail_at_matched_head``: the row's test tail at ours' val head accuracy
    (``eval/curves.py``); ``acc_avg``: test_balanced Acc_avg at each row's own α. Row minus ours."""

    row: str = field(metadata={"help": "The row compared with ours (a variant name)."})
    measure: Literal["tail_at_matched_head", "acc_avg"] = field(metadata={"help": "What is compared."})
    val: Literal["val", "val_balanced"] = field(
        default="val_balanced", metadata={"help": "tail_at_matched_head: the split the head accuracy is matched on."}
    )


def _suite_rule_defaults(evaluation: Any) -> dict[str, Any]:
    """The suite's ``evaluation.prior_correction`` keys a variant inherits (all but alpha, which is the row's)."""
    if not isinstance(evaluation, dict):
        return {}
    block = evaluation.get("prior_correction")
    out = {k: evaluation[k] for k in PRIOR_CORRECTION_MOVED if k in evaluation}  # the old, flat spelling
    if isinstance(block, dict):
        out.update({k: v for k, v in block.items() if k != PriorCorrectionArguments.SHORTHAND})
    return out


@dataclass
class SuiteConfig:
    r"""A ``suite.yaml`` (see ``yaml_recipes/bench/``).

    Where: name, cache_dir, out_dir
    Model and recipes: model_name_or_path, template, recipes (relative to the suite file), overrides (per stage)
    Data: prepare (``behaviorlm prepare`` arguments; prepared once, shared by every seed)
    Repetition: seeds (each seeds training, the anchor/aux draw, subsets and the selection pool)
    Defaults every variant inherits: a_tuning, selection
    Evaluation: evaluation (splits, per-split caps, fixed subset seed, batch size)
    Rows: ours (the main variant's name), variants, sweeps, sasrec
    """

    RENAMED: ClassVar[dict[str, str]] = {}

    name: str = field(metadata={"help": "Suite name."})
    model_name_or_path: str = field(metadata={"help": "Base model."})
    template: str = field(metadata={"help": "LLaMA-Factory template."})
    recipes: RecipeSet = field(metadata={"help": "a_tuning and b_tuning recipes."})
    prepare: PrepareArguments = field(metadata={"help": "behaviorlm prepare arguments."})
    variants: list[VariantConfig] = field(metadata={"help": "The rows."})
    seeds: list[int] = field(default_factory=lambda: [0], metadata={"help": "Seeds of every row."})
    data_seed: int | None = field(
        default=None,
        metadata={
            "help": "The seed of every training-data draw (A mix, subsets, class-balanced draws, selection's pool "
            "order). None: each seed draws its own data. Set, the training set is fixed and the seeds vary the "
            "training (LoRA init, order, dropout) and, through the A-Tuned model, the B-set; the frozen layers' "
            "first pass is then shared by every seed."
        },
    )
    note: str = field(default="", metadata={"help": "The report's first line (what the suite is, and is not)."})
    cache_dir: str = field(default="runs/bench-cache", metadata={"help": "Step cache (shared across suites)."})
    out_dir: str = field(default="runs/bench", metadata={"help": "results.json, report.md and plots."})
    ours: str = field(default="BehaviorLM", metadata={"help": "The main row's name (kind behaviorlm)."})
    a_tuning: ATuningArguments = field(default_factory=ATuningArguments, metadata={"help": "Default A mix."})
    selection: SelectionArguments = field(default_factory=SelectionArguments, metadata={"help": "Default pick."})
    evaluation: EvaluationArguments = field(default_factory=EvaluationArguments, metadata={"help": "Evaluation."})
    overrides: StageOverrides = field(default_factory=StageOverrides, metadata={"help": "Over the recipes."})
    sweeps: SweepArguments = field(default_factory=SweepArguments, metadata={"help": "Sweep rows."})
    sasrec: SASRecBench = field(default_factory=SASRecBench, metadata={"help": "The SASRec baseline."})
    parts: list[PartConfig] = field(default_factory=list, metadata={"help": "Named parts (one GPU call each)."})
    time_model: TimeModel = field(default_factory=TimeModel, metadata={"help": "Estimates of --list-parts."})
    lr_search: LRSearch | None = field(default=None, metadata={"help": "A learning-rate search on val."})
    lora_top_layers: int | None = lora_top_layers_field()
    frozen_reuse: FrozenReuseArguments = field(
        default_factory=FrozenReuseArguments, metadata={"help": "Reuse of the frozen layers' output in training."}
    )
    stock_forward: bool = field(
        default=False,
        metadata={
            "help": "Train with LLaMA-Factory's own forward: no answer-only head, no frozen-layer reuse. A check "
            "that both speed-ups change nothing (the models get step keys of their own)."
        },
    )
    score_together: int = field(
        default=8,
        metadata={
            "help": "Trained models one evaluation pass scores together, sharing the layers their adapters leave "
            "alone (model/twin.py): a part scores its models at once. The same scores either way; 1: each alone."
        },
    )
    primary: list[PrimaryComparison] = field(
        default_factory=list,
        metadata={"help": "Pre-registered comparisons, Holm-corrected together; every other row is exploratory."},
    )
    source: str = field(default="", metadata={"internal": True, "help": "The suite file (pre-registration)."})
    base_dir: str = field(default=".", metadata={"internal": True, "help": "Folder of the suite file."})

    @staticmethod
    def __prebuild__(raw: dict[str, Any], prefix: str) -> dict[str, Any]:
        """Each variant's a_tuning/selection keys go on top of the suite's (a row changes only what it names)."""
        variants = raw.get("variants")
        if not isinstance(variants, list):
            raise ConfigError(f"{prefix}variants: expected a list of variants, got {variants!r}")
        resolved = []
        for i, v in enumerate(variants):
            if not isinstance(v, dict):
                raise ConfigError(f"{prefix}variants[{i}]: expected a mapping, got {v!r}")
            v = dict(v)
            for block in ("a_tuning", "selection"):
                base, own = raw.get(block) or {}, v.get(block) or {}
                if isinstance(base, dict) and isinstance(own, dict):
                    v[block] = {**base, **own}
            # A row's prior correction: its own alpha, the suite's head_floor and alpha_grid unless it names them.
            inherited = _suite_rule_defaults(raw.get("evaluation"))
            if inherited:
                own = v.get("prior_correction", {})
                own = own if isinstance(own, dict) else {PriorCorrectionArguments.SHORTHAND: own}
                v["prior_correction"] = {**inherited, **own}
            resolved.append(v)
        return {**raw, "variants": resolved}

    def __post_init__(self) -> None:
        check_lora_top_layers(self.lora_top_layers)
        layers = self.time_model.model_layers
        if layers is not None and self.lora_top_layers is not None and self.lora_top_layers > layers:
            raise ValueError(
                f"lora_top_layers={self.lora_top_layers} is more than time_model.model_layers={layers}: set "
                "model_layers to the model's decoder layers, or lora_top_layers to at most that"
            )
        if self.score_together < 1:
            raise ValueError(f"score_together must be >= 1 (1: each model scored alone), got {self.score_together}")
        for stage in ("a_tuning", "b_tuning"):
            if not self.recipe_path(stage).is_file():
                raise ValueError(f"recipes.{stage}: {self.recipe_path(stage)} not found")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds must be a non-empty list of distinct ints")
        names = [v.name for v in self.variants]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate variant names {dupes}")
        if self.ours not in names:
            raise ValueError(f"ours = {self.ours!r} is not a variant (have {names})")
        if self.variant(self.ours).kind != "behaviorlm":
            raise ValueError("the 'ours' variant must have kind behaviorlm")
        if self.evaluation.prior_correction.active:
            raise ValueError(
                "evaluation.prior_correction.alpha: in a suite each variant names its own alpha; set "
                "prior_correction on the variants (e.g. a second row with prior_correction: auto)"
            )
        choose_on = {v.prior_correction.choose_on for v in self.variants if v.prior_correction.is_auto}
        if self.sasrec.enabled and self.sasrec.prior_correction_row:
            choose_on.add(self.evaluation.prior_correction.choose_on)
        for split in sorted(choose_on - set(self.evaluation.splits)):
            raise ValueError(
                f"a variant has prior_correction: auto, which chooses alpha on {split}; add {split} to "
                f"evaluation.splits (with a cap, e.g. evaluation.{split}: {{max_samples: 500}})"
            )
        self.variants.extend(self._sweep_variants())
        for v in self.variants:
            if v.seeds is not None and (not v.seeds or set(v.seeds) - set(self.seeds)):
                raise ValueError(
                    f"variant {v.name!r} seeds {v.seeds} must be a non-empty subset of the suite's seeds {self.seeds}"
                )
        self._check_parts()
        if self.lr_search is not None and self.lr_search.split not in self.evaluation.splits:
            where = self.lr_search.split
            raise ValueError(
                f"lr_search picks the winner on {where}; add {where} to evaluation.splits (a capped one will do)"
            )
        names = {v.name for v in self.variants}
        for p in self.primary:
            if p.row not in names or p.row == self.ours:
                raise ValueError(f"primary: {p.row!r} must be a row other than ours; rows are {sorted(names)}")
            if p.measure == "tail_at_matched_head" and p.val not in self.evaluation.splits:
                raise ValueError(f"primary {p.row!r}: matching head accuracy on {p.val} needs it in evaluation.splits")
        ours = self.variant(self.ours)
        for v in self.variants:
            if v.train_samples == "matched" and ours.seeds is not None and set(self.seeds_of(v)) - set(ours.seeds):
                raise ValueError(f"{v.name!r} is matched to {self.ours!r}, so needs its seeds")

    def _check_parts(self) -> None:
        if not self.parts:
            return
        names = [p.name for p in self.parts]
        if len(set(names)) != len(names):
            raise ValueError(f"parts: duplicate part names {sorted({n for n in names if names.count(n) > 1})}")
        rows = {v.name for v in self.variants}
        for p in self.parts:
            if p.seeds is not None and (not p.seeds or set(p.seeds) - set(self.seeds)):
                raise ValueError(f"parts.{p.name}.seeds {p.seeds} must be a non-empty subset of seeds {self.seeds}")
            unknown = sorted(set(p.variants) - rows)
            if unknown:
                raise ValueError(f"parts.{p.name}: unknown variant(s) {unknown}; rows are {sorted(rows)}")
        placed = {n for p in self.parts for n in p.variants}
        missing = sorted(rows - placed)
        if missing:
            raise ValueError(f"parts: variant(s) {missing} are in no part, so no part would ever run them")
        if self.sasrec.enabled and not any(p.sasrec for p in self.parts):
            raise ValueError("parts: sasrec is enabled but no part has sasrec: true")

    def seeds_of(self, v: VariantConfig) -> list[int]:
        return v.seeds if v.seeds is not None else self.seeds

    def recipe_path(self, stage: str) -> Path:
        return self.recipes.path(stage, self.base_dir)

    def variant(self, name: str) -> VariantConfig:
        return next(v for v in self.variants if v.name == name)

    @property
    def data_base(self) -> Path:
        return Path(self.prepare.dataset_dir) / self.prepare.name

    def _sweep_variants(self) -> list[VariantConfig]:
        """One ``behaviorlm`` row per sweep value, equal to ``ours`` but for that value."""
        ours = self.variant(self.ours)
        rows = []
        for v in self.sweeps.aux_ratio:
            rows.append((f"λ={v:g}", SweepPoint("aux_ratio", float(v)), replace(ours.a_tuning, aux_ratio=v), None))
        for v in self.sweeps.k:
            rows.append((f"k={v}", SweepPoint("k", int(v)), None, replace(ours.selection, k=v)))
        for v in self.sweeps.anchors:
            rows.append((f"anchors={v}", SweepPoint("anchors", int(v)), replace(ours.a_tuning, anchors=v), None))
        return [
            VariantConfig(
                name=name,
                kind="behaviorlm",
                group="sweep",
                seeds=self.sweeps.seeds,
                a_tuning=a or ours.a_tuning,
                selection=s or ours.selection,
                sweep=point,
            )
            for name, point, a, s in rows
        ]
