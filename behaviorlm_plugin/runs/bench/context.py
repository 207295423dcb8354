"""What every bench step of one suite run reads: the suite, its prepared data and fingerprint, the step cache,
the training settings and the evaluation samples every row is scored on. Built once, after ``prepare``, by
the runner; the bench's steps and helpers take it (never the runner) and write none of it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from behaviorlm_plugin.data.dataset import PreparedDataset
from behaviorlm_plugin.data.registry import make_entry, register_datasets
from behaviorlm_plugin.hparams.bench_args import SuiteConfig
from behaviorlm_plugin.runs.bench.cache import StepCache, data_fingerprint
from behaviorlm_plugin.runs.steps import ModelSpec, TrainSettings

VAL_DATASET = "bench_val"
"""The val split, registered in the bench's own ``dataset_info.json`` (per-epoch evaluation reads it)."""


@dataclass(frozen=True)
class BenchContext:
    suite: SuiteConfig
    data: PreparedDataset
    cache: StepCache
    fp: str
    """The data fingerprint: part of every step key that reads the prepared data."""
    datasets_dir: Path
    """The bench's training datasets and their ``dataset_info.json`` (the user's registry is never touched)."""
    model: ModelSpec
    training: TrainSettings
    eval_ids: dict[str, list[str]]
    """Per scored split, the ids of its capped evaluation samples in file order (the same for every row)."""
    eval_samples: dict[str, dict]
    """Per scored split, ``{"ids", "labels", "users"}`` (label codes into ``stats.behavior_list``; the user of
    each sample, whom the bootstrap resamples): the bootstrap's input."""
    log: Callable[[str], None] = print

    def data_seed(self, seed: int) -> int:
        """The seed of a row's training-data draws at run seed ``seed`` (the suite's ``data_seed`` when set)."""
        return seed if self.suite.data_seed is None else self.suite.data_seed

    @property
    def model_id(self) -> dict:
        return {"model": self.model.model_name_or_path, "template": self.model.template}

    def register(self, name: str, path: Path, formatting: str) -> None:
        register_datasets(
            dataset_dir=self.datasets_dir, entries={name: make_entry(str(path.absolute()), formatting)}, overwrite=True
        )


def build_context(suite: SuiteConfig, cache: StepCache, log: Callable[[str], None] = print) -> BenchContext:
    """The context of a suite whose data is prepared: fingerprint, val registration and evaluation samples."""
    data = PreparedDataset(suite.prepare.dataset_dir, suite.prepare.name)
    training = training_settings(suite)
    ids = _eval_ids(suite, data)
    ctx = BenchContext(
        suite=suite,
        data=data,
        cache=cache,
        fp=data_fingerprint(data),
        datasets_dir=Path(training.dataset_dir),
        model=training.model,
        training=training,
        eval_ids=ids,
        eval_samples=_eval_samples(data, ids),
        log=log,
    )
    ctx.register(VAL_DATASET, data.path("val"), "alpaca")
    return ctx


def training_settings(suite: SuiteConfig) -> TrainSettings:
    """What every LoRA stage of the suite shares (no data needed: the datasets are registered by name)."""
    return TrainSettings(
        model=ModelSpec(suite.model_name_or_path, suite.template),
        recipes=suite.recipes,
        base_dir=suite.base_dir,
        overrides=suite.overrides,
        dataset_dir=str(Path(suite.cache_dir) / "datasets"),
        eval_dataset=VAL_DATASET,
        lora_top_layers=suite.lora_top_layers,
        frozen_reuse=suite.frozen_reuse,
        stock_forward=suite.stock_forward,
    )


def _eval_ids(suite: SuiteConfig, data: PreparedDataset) -> dict[str, list[str]]:
    ev = suite.evaluation
    out = {}
    for split in ev.splits:
        cap = ev.cap(split)
        _, metas = data.load(split, max_samples=cap.max_samples, max_per_class=cap.max_per_class, seed=ev.seed)
        out[split] = [m["id"] for m in metas]
    return out


def _eval_samples(data: PreparedDataset, ids: dict[str, list[str]]) -> dict[str, dict]:
    code = {b: i for i, b in enumerate(data.stats.behavior_list)}
    out = {}
    for split, want in ids.items():
        _, metas = data.load(split)
        by_id = {m["id"]: m for m in metas}
        out[split] = {
            "ids": want,
            "labels": [code[by_id[i]["label"]] for i in want],
            "users": [str(by_id[i]["user_id"]) for i in want],
        }
    return out
