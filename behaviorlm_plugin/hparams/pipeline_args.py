"""A ``pipeline.yaml``: the one-command progressive run (``behaviorlm run``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from behaviorlm_plugin.hparams.data_args import PrepareArguments
from behaviorlm_plugin.hparams.eval_args import EvaluationArguments
from behaviorlm_plugin.hparams.selection_args import SelectionArguments
from behaviorlm_plugin.hparams.tuning_args import (
    ExportCheckArguments,
    FrozenReuseArguments,
    RecipeSet,
    StageOverrides,
    check_lora_top_layers,
    lora_top_layers_field,
)


@dataclass
class PipelineConfig:
    r"""Which recipes to chain, on which data and model.

    Where: run_dir (stage outputs, manifest, report)
    Model: model_name_or_path, template (they override the recipes' own)
    Recipes: recipes (a_tuning/b_tuning/export YAMLs, relative to the pipeline file), overrides (per stage)
    Data: prepare (``behaviorlm prepare`` arguments; reused when the dataset already has exactly these)
    Stages: selection, evaluation, export_check, skip_a_tuning (the paper's "w/o A-Tuning")
    Speed: lora_top_layers (LoRA on the top layers only; the CPU quick-start's setting)

    Paths other than the recipes are relative to the working directory (run from the repo root,
    like LLaMA-Factory's own examples).
    """

    RENAMED: ClassVar[dict[str, str]] = {
        "a_tuning": "recipes.a_tuning",
        "b_tuning": "recipes.b_tuning",
        "export": "recipes.export",
        "export_check_samples": "export_check.samples",
        "export_check_tolerance": "export_check.tolerance",
        "export_check_prob_tolerance": "export_check.prob_tolerance",
    }

    run_dir: str = field(metadata={"help": "Folder of the run: stage outputs, manifest.json, report.md."})
    model_name_or_path: str = field(metadata={"help": "Base model (HF folder or hub id)."})
    template: str = field(metadata={"help": "LLaMA-Factory template of the model (smollm2, llama3, qwen…)."})
    recipes: RecipeSet = field(metadata={"help": "Stage recipes (LLaMA-Factory YAMLs)."})
    prepare: PrepareArguments = field(metadata={"help": "behaviorlm prepare arguments."})
    selection: SelectionArguments = field(default_factory=SelectionArguments, metadata={"help": "B-Tuning pick."})
    evaluation: EvaluationArguments = field(default_factory=EvaluationArguments, metadata={"help": "Evaluation."})
    overrides: StageOverrides = field(default_factory=StageOverrides, metadata={"help": "Over the recipes."})
    skip_a_tuning: bool = field(
        default=False, metadata={"help": "The paper's 'w/o A-Tuning' ablation: B-Tuning starts from the base model."}
    )
    export_check: ExportCheckArguments = field(
        default_factory=ExportCheckArguments, metadata={"help": "Merged export vs base+adapter check."}
    )
    reference_rows: bool = field(
        default=True,
        metadata={
            "help": "Also score the base model (zero-shot), the majority class and the hour+place rule on the "
            "same evaluation samples, so the report reads the model against them."
        },
    )
    lora_top_layers: int | None = lora_top_layers_field()
    frozen_reuse: FrozenReuseArguments = field(
        default_factory=FrozenReuseArguments, metadata={"help": "Reuse of the frozen layers' output in training."}
    )
    base_dir: str = field(default=".", metadata={"internal": True, "help": "Folder of the pipeline file."})

    def __post_init__(self) -> None:
        for key in ("run_dir", "model_name_or_path", "template"):
            if not getattr(self, key):
                raise ValueError(f"'{key}' is required")
        check_lora_top_layers(self.lora_top_layers)
        if self.recipes.export is None:
            raise ValueError("recipes.export is required (the merge step of the run)")

    @property
    def name(self) -> str:
        return self.prepare.name

    @property
    def dataset_dir(self) -> str:
        return self.prepare.dataset_dir

    def recipe_path(self, stage: str) -> Path:
        return self.recipes.path(stage, self.base_dir)
