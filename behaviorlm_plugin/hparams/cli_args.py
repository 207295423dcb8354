"""Blocks of the smaller commands (evaluate, select, sasrec, simulate, register-aux).

Fields that mean the same as a field of another block copy it with :func:`same_as`, so the
default and the help text still live in one place.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from behaviorlm_plugin.hparams.data_args import PrepareArguments
from behaviorlm_plugin.hparams.eval_args import PredictArguments
from behaviorlm_plugin.hparams.prior_correction_args import PriorCorrectionArguments, as_prior_correction


def same_as(cls: type, name: str, *, default=dataclasses.MISSING):
    """A field with the default and help of ``cls.name`` (optionally another default, e.g. None = not given)."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    if default is not dataclasses.MISSING:
        return field(default=default, metadata=dict(f.metadata))
    if f.default_factory is not dataclasses.MISSING:
        return field(default_factory=f.default_factory, metadata=dict(f.metadata))
    return field(default=f.default, metadata=dict(f.metadata))


@dataclass
class EvaluateArguments:
    r"""``behaviorlm evaluate``: score existing predictions, or predict first.

    Input: preds, or model (+ adapter, template) with data
    Subset and speed (with --model): method, batch_size, max_samples, max_per_class, seed
    Decision rule: prior_correction (alpha: 0, alpha >= 0 or auto on val_preds; head_floor, alpha_grid)
    Output: stats, out_dir, name
    """

    MOVED: ClassVar[dict[str, str]] = {"head_floor": "prior_correction.head_floor"}

    stats: str = field(metadata={"help": "stats.json of the dataset (training-split categories)."})
    preds: str | None = field(default=None, metadata={"help": "preds.jsonl from `behaviorlm predict`."})
    model: str | None = same_as(PredictArguments, "model", default=None)
    adapter: str | None = same_as(PredictArguments, "adapter")
    data: str | None = same_as(PredictArguments, "data", default=None)
    template: str | None = same_as(PredictArguments, "template")
    method: Literal["score", "generate"] = same_as(PredictArguments, "method")
    batch_size: int = same_as(PredictArguments, "batch_size")
    max_samples: int | None = same_as(PredictArguments, "max_samples")
    max_per_class: int | None = same_as(PredictArguments, "max_per_class")
    seed: int = same_as(PredictArguments, "seed")
    prior_correction: PriorCorrectionArguments = same_as(PredictArguments, "prior_correction")  # noqa: RUF009
    val_preds: str | None = same_as(PredictArguments, "val_preds")
    out_dir: str = field(default="eval", metadata={"help": "Where metrics.json and the plots go."})
    name: str | None = field(default=None, metadata={"help": "Row name in the table (default: adapter/model)."})

    def __post_init__(self) -> None:
        self.prior_correction = as_prior_correction(self.prior_correction)
        if self.prior_correction.is_auto and not self.val_preds:
            raise ValueError(
                "--prior-correction auto chooses alpha on val: pass --val-preds (predict val with --top-k 0)"
            )
        if self.val_preds and not Path(self.val_preds).is_file():
            raise ValueError(f"--val-preds {self.val_preds}: file not found; write it with `behaviorlm predict`")
        if bool(self.preds) == bool(self.model):
            raise ValueError("give either --preds or --model (with --data)")
        if self.model and not self.data:
            raise ValueError("--model needs --data (a prepared split)")
        if self.preds and (self.max_samples is not None or self.max_per_class is not None):
            raise ValueError(
                "--max-samples/--max-per-class subset what --model predicts; with --preds every row counts"
            )
        if self.preds and not Path(self.preds).is_file():
            raise ValueError(f"--preds {self.preds}: file not found; write it with `behaviorlm predict`")
        if Path(self.out_dir).exists() and not Path(self.out_dir).is_dir():
            raise ValueError(f"--out-dir {self.out_dir}: is a file; pass a folder for metrics.json and the plots")
        if not Path(self.stats).is_file():
            raise ValueError(f"--stats {self.stats}: file not found; pass the stats.json `behaviorlm prepare` wrote")

    def predict_arguments(self) -> PredictArguments:
        return PredictArguments(
            model=self.model,
            adapter=self.adapter,
            data=self.data,
            out=str(Path(self.out_dir) / "preds.jsonl"),
            template=self.template,
            method=self.method,
            batch_size=self.batch_size,
            max_samples=self.max_samples,
            max_per_class=self.max_per_class,
            seed=self.seed,
            top_k=0,
        )


@dataclass
class SelectTarget:
    r"""``behaviorlm select``: which model scores which dataset, and where the picks go (with SelectionArguments)."""

    model: str = field(metadata={"help": "Base model folder."})
    dataset_dir: str = same_as(PrepareArguments, "dataset_dir")
    name: str = same_as(PrepareArguments, "name")
    adapter: str | None = field(default=None, metadata={"help": "Stage-1 (A-Tuning) LoRA adapter."})
    template: str | None = same_as(PredictArguments, "template")
    output_name: str | None = field(default=None, metadata={"help": "Registered name (default NAME_btuning)."})
    out_json: str | None = field(default=None, metadata={"help": "selection.json path (default beside the data)."})


@dataclass
class SASRecTarget:
    r"""``behaviorlm sasrec``: which dataset, where to write, how much to train on (with SASRecConfig)."""

    out_dir: str = field(metadata={"help": "Predictions, metrics, sasrec.json and the weights."})
    dataset_dir: str = same_as(PrepareArguments, "dataset_dir")
    name: str = same_as(PrepareArguments, "name")
    train_size: int | None = field(default=None, metadata={"help": "Random subset of train_all (sample efficiency)."})
    no_search: bool = field(default=False, metadata={"help": "Train the given config only (no lr x size search)."})


@dataclass
class SimulateArguments:
    r"""``behaviorlm simulate``: write a synthetic event log (the embedded default) to a file."""

    out: str = field(metadata={"help": "Output file: .parquet, .csv or .jsonl."})
    users: int = same_as(PrepareArguments, "synthetic_users")
    days: int = same_as(PrepareArguments, "synthetic_days")
    seed: int = same_as(PrepareArguments, "seed")

    def __post_init__(self) -> None:
        if not self.out.endswith((".parquet", ".csv", ".jsonl")):
            raise ValueError(f"--out must end in .parquet, .csv or .jsonl, got {self.out}")


@dataclass
class RegisterAuxArguments:
    r"""``behaviorlm register-aux``: register your own ShareGPT/alpaca conversations as an aux dataset."""

    file: str = field(metadata={"help": "ShareGPT or alpaca JSON/JSONL."})
    name: str = field(metadata={"help": "Entry name in dataset_info.json."})
    dataset_dir: str = same_as(PrepareArguments, "dataset_dir")
    max_tokens: int = same_as(PrepareArguments, "aux_max_tokens")
    tokenizer: str | None = same_as(PrepareArguments, "tokenizer")
    overwrite: bool = field(default=False, metadata={"help": "Replace an existing entry of the same name."})
