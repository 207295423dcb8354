"""The steps a run chains, once for the pipeline and the bench: mix, subset, train, select, evaluate, export
and the reference rows.

Each step is a function of explicit, frozen inputs and plain values; it writes where it is told and returns
what the caller records. The pipeline runs these steps under its manifest (``runs/manifest.py``), the bench
under its content-addressed step cache (``runs/bench/cache.py``); neither builds LLaMA-Factory arguments,
runs selection or scores a model any other way, so a rule added here (``lora_top_layers``, the eval-dataset
rule) holds in both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from behaviorlm_plugin.data.aux_data import build_atuning_mix
from behaviorlm_plugin.data.dataset import PreparedDataset
from behaviorlm_plugin.data.loaders import check_format_name
from behaviorlm_plugin.eval.evaluate import (
    evaluate_predictions,
    evaluate_splits,
    evaluate_together,
    evaluate_with_zero_shot,
)
from behaviorlm_plugin.eval.metrics import SUMMARY_KEYS
from behaviorlm_plugin.eval.reference import reference_rows as context_rule_rows
from behaviorlm_plugin.extras.constants import AUX_SPLIT
from behaviorlm_plugin.extras.fileio import atomic_write_json, atomic_write_jsonl, read_jsonl
from behaviorlm_plugin.hparams.data_args import PrepareArguments
from behaviorlm_plugin.hparams.eval_args import EvaluationArguments
from behaviorlm_plugin.hparams.parser import ConfigError
from behaviorlm_plugin.hparams.selection_args import SelectionArguments
from behaviorlm_plugin.hparams.tuning_args import ExportCheckArguments, FrozenReuseArguments, RecipeSet, StageOverrides
from behaviorlm_plugin.model.paths import check_model_path
from behaviorlm_plugin.tuning.export import export_and_verify
from behaviorlm_plugin.tuning.launcher import TrainJob, export_args, read_recipe, train_args
from behaviorlm_plugin.tuning.lora_layers import top_layer_targets
from behaviorlm_plugin.tuning.lora_stage import train_stage
from behaviorlm_plugin.tuning.select_run import run_selection
from behaviorlm_plugin.tuning.strategies import check_strategy_name

Log = Callable[[str], None]


class StepError(ConfigError):
    """A step asked for something the data cannot give; the message names the file and the fix."""


@dataclass(frozen=True)
class ModelSpec:
    """The base model a run tunes, scores and exports."""

    model_name_or_path: str
    template: str


@dataclass(frozen=True)
class TrainSettings:
    """What every LoRA stage of a run shares: the model, the recipes and their overrides, where the training
    datasets are registered, the val dataset per-epoch evaluation reads, and the tuned layers."""

    model: ModelSpec
    recipes: RecipeSet
    base_dir: str
    """Folder the recipe paths are relative to (the config file's)."""
    overrides: StageOverrides
    dataset_dir: str
    eval_dataset: str
    lora_top_layers: int | None = None
    frozen_reuse: FrozenReuseArguments | None = None
    stock_forward: bool = False
    """LLaMA-Factory's own forward: no answer-only head, no frozen-layer reuse (the check that they change nothing)."""

    def recipe_path(self, stage: str) -> Path:
        return self.recipes.path(stage, self.base_dir)


# ----------------------------------------------------------------------------- checks
def preflight(
    model: ModelSpec, prepare: PrepareArguments, selections: dict[str, SelectionArguments], recipes: list[Path]
) -> None:
    """Everything cheap a step would otherwise find late: the model path, registered names, the recipes."""
    check_model_path(model.model_name_or_path, what="model_name_or_path")
    check_names(prepare, selections)
    for path in recipes:
        read_recipe(path)


def check_names(prepare: PrepareArguments, selections: dict[str, SelectionArguments]) -> None:
    """Registry names of a config, checked where they are used (a typo fails before any step, not hours in).
    ``selections``: each selection block by where it sits (``selection``, ``variants[3] (uniform).selection``)."""
    check_format_name(prepare.format, source="prepare.format")
    for where, sel in selections.items():
        check_strategy_name(sel.strategy, source=f"{where}.strategy")


# ----------------------------------------------------------------------------- data
def mix(data: PreparedDataset, out_path: Path, *, anchors: int | None, aux_ratio: float, seed: int) -> dict:
    """The A-Tuning mix (anchors + λ auxiliary conversations) of ``data`` into ``out_path``; its info."""
    rows, info = build_atuning_mix(
        read_jsonl(data.path("train_anchor")),
        read_jsonl(data.path(AUX_SPLIT)),
        aux_ratio=aux_ratio,
        anchors=anchors,
        seed=seed,
    )
    atomic_write_jsonl(out_path, rows)
    return info


def subset(
    data: PreparedDataset, out_path: Path, *, split: str, n: int, seed: int, categories: tuple[str, ...] | None = None
) -> dict:
    """``n`` random samples of a split into ``out_path``; with ``categories``, only samples whose label is in
    those head/medium/tail categories, and all of them when fewer than ``n`` exist."""
    recs = read_jsonl(data.path(split))
    if categories is not None:
        metas = read_jsonl(data.meta_path(split))
        recs = [r for r, m in zip(recs, metas, strict=True) if m["head_medium_tail"] in categories]
        if not recs:
            raise StepError(f"{data.path(split)} has no samples labelled {'/'.join(categories)}")
    elif n > len(recs):
        raise StepError(f"{data.path(split)} has {len(recs)} samples, fewer than the {n} asked for")
    k = min(n, len(recs))
    idx = np.random.default_rng([seed, 2]).choice(len(recs), k, replace=False)
    atomic_write_jsonl(out_path, [recs[i] for i in idx])
    return {"n": k, "available": len(recs)}


def balanced_subset(data: PreparedDataset, out_path: Path, *, split: str, n: int, seed: int) -> dict:
    """``n`` samples of a split with equal counts per behavior (the remainder to a seeded choice of behaviors),
    drawn without replacement where a behavior has enough and with replacement where it is short: the data of
    class-balanced fine-tuning, from the same pool as the natural subset."""
    recs = read_jsonl(data.path(split))
    metas = read_jsonl(data.meta_path(split))
    by_label: dict[str, list[int]] = {}
    for i, m in enumerate(metas):
        by_label.setdefault(m["label"], []).append(i)
    labels = sorted(by_label)
    if n < len(labels):
        raise StepError(f"class-balanced fine-tuning: {n} samples cannot cover the {len(labels)} behaviors of {split}")
    rng = np.random.default_rng([seed, 3])
    base, extra = divmod(n, len(labels))
    bonus = set(rng.choice(len(labels), size=extra, replace=False).tolist())
    picked: list[int] = []
    short = 0
    for j, label in enumerate(labels):
        want = base + (1 if j in bonus else 0)
        pool = by_label[label]
        short += want > len(pool)
        picked += rng.choice(pool, size=want, replace=want > len(pool)).tolist()
    order = rng.permutation(len(picked))
    atomic_write_jsonl(out_path, [recs[picked[i]] for i in order])
    return {"n": len(picked), "available": len(recs), "classes": len(labels), "classes_drawn_with_replacement": short}


# ----------------------------------------------------------------------------- training
def train_config(
    s: TrainSettings,
    stage: str,
    *,
    dataset: str,
    output_dir: str,
    init: str | None = None,
    seed: int | None = None,
    learning_rate: float | None = None,
) -> dict:
    """The LLaMA-Factory arguments of one LoRA stage (``tuning.launcher``'s precedence), with the run's rules:

    * an ``eval_strategy`` without an ``eval_dataset`` evaluates on the run's val dataset (the best epoch);
    * ``lora_top_layers`` names the top layers' modules, unless the stage continues an adapter, which keeps
      its own targets.
    """
    job = TrainJob(
        stage=stage,
        model_name_or_path=s.model.model_name_or_path,
        template=s.model.template,
        dataset_dir=s.dataset_dir,
        dataset=dataset,
        output_dir=output_dir,
        init_adapter=init,
        eval_dataset=s.eval_dataset,
        seed=seed,
    )
    overrides = {**s.overrides.of(stage), **({"learning_rate": learning_rate} if learning_rate is not None else {})}
    cfg = train_args(s.recipe_path(stage), overrides, job)
    if str(cfg.get("eval_strategy", "no")) != "no" and "eval_dataset" not in cfg:
        cfg["eval_dataset"] = job.eval_dataset
    if s.lora_top_layers is not None and init is None:
        targets = top_layer_targets(s.model.model_name_or_path, s.lora_top_layers, str(cfg.get("lora_target", "all")))
        cfg["lora_target"] = ",".join(targets)
    return cfg


def train(
    cfg: dict,
    yaml_path: Path,
    *,
    clean: bool = True,
    reuse: FrozenReuseArguments | None = None,
    stock_forward: bool = False,
) -> dict:
    """One LoRA stage from :func:`train_config`'s arguments; the YAML is written to ``yaml_path`` first. With
    ``reuse`` enabled the frozen layers' output is served from its cache (the same training, faster);
    ``stock_forward`` trains with LLaMA-Factory's own forward (neither speed-up)."""
    reuse = reuse if reuse is not None and reuse.enabled else None
    return train_stage(cfg, yaml_path, clean=clean, reuse=reuse, stock_forward=stock_forward)


# ----------------------------------------------------------------------------- selection
def selection_record(args: SelectionArguments) -> dict:
    """The selection settings a fingerprint or a step key holds: ``pool`` only when it is not the original
    ``train_all``, so keys made before the choice existed stay valid."""
    rec = asdict(args)
    if rec.get("pool") == "train_all":
        del rec["pool"]
    return rec


def select(
    model: ModelSpec,
    adapter: str | None,
    data: PreparedDataset,
    selection: SelectionArguments,
    *,
    out_json: Path,
    output_name: str | None = None,
    out_path: Path | None = None,
) -> dict:
    """DDS/CDS (or any registered strategy) scored by ``adapter`` on ``data``'s pool. With ``output_name`` the
    picks are registered beside the data; with ``out_path`` they go to that file only (the bench's cache)."""
    return run_selection(
        model=model.model_name_or_path,
        adapter=adapter,
        template=model.template,
        dataset_dir=str(data.dataset_dir),
        name=data.name,
        args=selection,
        output_name=output_name,
        out_path=str(out_path) if out_path is not None else None,
        out_json=str(out_json),
    )


# ----------------------------------------------------------------------------- evaluation
def evaluate(
    model: ModelSpec,
    adapter: str | None,
    data: PreparedDataset,
    evaluation: EvaluationArguments,
    out_dir: Path,
    *,
    zero_shot_dir: Path | None = None,
) -> tuple[dict[str, dict], dict[str, dict] | None]:
    """Metrics per split of ``adapter`` (scores in ``out_dir/<split>/preds.jsonl``), and with ``zero_shot_dir``
    those of the base model on the same samples, in the same pass where the adapter allows it."""
    common = {"model": model.model_name_or_path, "template": model.template, "data": data, "evaluation": evaluation}
    if zero_shot_dir is not None and adapter is not None:
        return evaluate_with_zero_shot(adapter=adapter, out_dir=out_dir, zero_shot_dir=zero_shot_dir, **common)
    return evaluate_splits(adapter=adapter, out_dir=out_dir, **common), None


def evaluate_many(
    model: ModelSpec,
    adapters: list[str],
    data: PreparedDataset,
    evaluation: EvaluationArguments,
    out_dirs: list[Path],
    *,
    zero_shot_dir: Path | None = None,
) -> tuple[list[dict[str, dict]], dict[str, dict] | None]:
    """:func:`evaluate` of several adapters on the same samples (and the base model with ``zero_shot_dir``), in
    one pass over the layers they all leave alone where they allow it: the same scores as one by one."""
    return evaluate_together(
        model=model.model_name_or_path,
        adapters=adapters,
        template=model.template,
        data=data,
        evaluation=evaluation,
        out_dirs=out_dirs,
        zero_shot_dir=zero_shot_dir,
    )


def summary(m: dict) -> dict:
    """A split's metrics as a run records them: the summary keys and the alpha they were read at."""
    return {**{k: m.get(k) for k in SUMMARY_KEYS}, "alpha": m.get("alpha", 0.0)}


def reference_rows(data: PreparedDataset, split: str, ids: list[str], zero_shot: dict, out_path: Path) -> dict:
    """Zero-shot (its metrics on ``split``), majority and hour+place on exactly the samples ``ids``, into
    ``out_path``; the context rules are read at plain argmax."""
    rows = {"zero-shot": summary(zero_shot)}
    for name, preds in context_rule_rows(data, split, ids).items():
        m = evaluate_predictions(preds, data.stats, source=f"{name} on {split}")
        rows[name] = {**{k: m.get(k) for k in SUMMARY_KEYS}, "alpha": 0.0}
    atomic_write_json(out_path, rows)
    return rows


def scored_ids(preds_path: Path) -> list[str]:
    return [p["id"] for p in read_jsonl(preds_path)]


# ----------------------------------------------------------------------------- export
def export_config(model: ModelSpec, recipe: Path, overrides: StageOverrides, *, adapter: str, export_dir: str) -> dict:
    return export_args(
        recipe,
        overrides.of("export"),
        model=model.model_name_or_path,
        template=model.template,
        adapter=adapter,
        export_dir=export_dir,
    )


def export(
    cfg: dict, yaml_path: Path, *, data: PreparedDataset, check: ExportCheckArguments, alpha: float | None
) -> dict:
    """Merge (``llamafactory-cli export``'s arguments ``cfg``), verify the merge against base + adapter on
    ``test_balanced``, and write ``behaviorlm.json`` with the prior correction's ``alpha``."""
    return export_and_verify(cfg, yaml_path, data=str(data.path("test_balanced")), check=check, alpha=alpha)
