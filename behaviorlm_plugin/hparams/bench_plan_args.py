"""How a suite is run and estimated: its named parts (``behaviorlm bench SUITE --part NAME``) and the time model
``--list-parts`` estimates them with (``runs/bench/time_model.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class PartConfig:
    r"""A named group of rows that fits one short GPU call (``behaviorlm bench SUITE --part NAME``)."""

    name: str = field(metadata={"help": "Part name (a file name: letters, digits, '-', '_')."})
    variants: list[str] = field(default_factory=list, metadata={"help": "Rows this part runs (names)."})
    sasrec: bool = field(default=False, metadata={"help": "This part runs the SASRec rows."})
    seeds: list[int] | None = field(default=None, metadata={"help": "Only these seeds of its rows (None = all)."})
    lr_search: list[Literal["full_ft", "a_tuning", "b_tuning"]] = field(
        default_factory=list, metadata={"help": "lr_search targets this part runs (other parts reuse the winners)."}
    )
    description: str = field(default="", metadata={"help": "One line for --list-parts."})
    evaluate: bool = field(
        default=True,
        metadata={
            "help": "False: the part only trains its rows' models (into the step cache) and records no rows; a "
            "later part with those rows finds them trained and scores them together in one pass (model/twin.py)."
        },
    )

    def __post_init__(self) -> None:
        if not self.name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"part name {self.name!r}: letters, digits, '-' and '_' only")
        if not self.variants and not self.sasrec and not self.lr_search:
            raise ValueError(f"part {self.name!r} runs nothing: give variants, sasrec: true or lr_search targets")
        if not self.evaluate and (self.sasrec or self.lr_search or not self.variants):
            raise ValueError(
                f"part {self.name!r}: evaluate: false trains rows only; give variants, no sasrec or lr_search"
            )


@dataclass
class TimeModel:
    r"""What ``--list-parts`` estimates a part's time from (``runs/bench/time_model.py``): fixed costs and rates.

    Fixed costs: startup_s, train_fixed_s, eval_fixed_s, sasrec_per_seed_s
    Rates: train_tokens_per_s (an epoch, as trained: at the reuse rate when ``frozen_reuse`` is on),
        first_pass_tokens_per_s (the frozen layers' first pass, once per training dataset, with the reuse),
        stock_train_tokens_per_s (an epoch without the reuse: the plan's comparison),
        stock_forward_tokens_per_s (an epoch of a ``stock_forward`` suite: LLaMA-Factory's own forward),
        score_samples_per_s (one model), score_model_fraction (each further model of a shared scoring pass)
    Sizes: tokens_per_sample, epochs, behaviors; plan_samples (the totals ``--list-parts`` also prints)
    Layers: rates_top_layers, model_layers (the tuned and the decoder layers the rates were measured at; a suite
        with another ``lora_top_layers`` scales them, see ``runs/bench/time_model.py``)

    The defaults are the speed issue's GPU targets (SmolLM2 LoRA 150k tokens/s, scoring 1,000 samples/s): targets
    until ``benchmarks/bench_gpu.py`` measures them. ``cpu-main`` sets the rates measured on this CPU.
    """

    startup_s: float = field(
        default=60.0, metadata={"help": "Per call: imports, data check, model download-free load."}
    )
    train_fixed_s: float = field(default=25.0, metadata={"help": "Per training run: launch, load, tokenise, save."})
    eval_fixed_s: float = field(default=10.0, metadata={"help": "Per evaluation or selection: load, tokenise."})
    train_tokens_per_s: float = field(
        default=150_000.0, metadata={"help": "LoRA training throughput per epoch (at the reuse rate with the reuse)."}
    )
    first_pass_tokens_per_s: float | None = field(
        default=None,
        metadata={"help": "With frozen_reuse: the first pass over the frozen layers, once per dataset. None: unused."},
    )
    stock_train_tokens_per_s: float | None = field(
        default=None,
        metadata={
            "help": "The epoch rate without the reuse (the answer-only head kept): a suite with frozen_reuse off "
            "trains at it, and --list-parts also prints the plan without the reuse."
        },
    )
    stock_forward_tokens_per_s: float | None = field(
        default=None,
        metadata={
            "help": "The epoch rate of LLaMA-Factory's own forward (stock_forward: no reuse, the full LM head at "
            "every token). None: stock_train_tokens_per_s, which underestimates it."
        },
    )
    score_samples_per_s: float = field(default=1_000.0, metadata={"help": "Candidate scoring of one model."})
    score_model_fraction: float = field(
        default=1.0,
        metadata={"help": "Each further model scored in the same pass, as a fraction of one (model/twin.py)."},
    )
    tokens_per_sample: float = field(default=500.0, metadata={"help": "Prompt + answer tokens of a sample."})
    epochs: float = field(default=1.0, metadata={"help": "Epochs of every training run (as the recipes say)."})
    behaviors: int = field(default=35, metadata={"help": "Behaviors (candidates) in the data: B-set and cap sizes."})
    sasrec_per_seed_s: float = field(default=60.0, metadata={"help": "SASRec search, curve and tail-aware rows."})
    plan_samples: list[int] = field(
        default_factory=list,
        metadata={"help": "--list-parts also prints the total with ours' training set (A mix + B-set) at these sizes."},
    )
    rates_top_layers: int | None = field(
        default=None,
        metadata={
            "help": "The lora_top_layers the training and first-pass rates were measured at. With model_layers, a "
            "suite tuning another number of layers scales them. None: the rates are used as they are."
        },
    )
    model_layers: int | None = field(
        default=None,
        metadata={"help": "Decoder layers of the model the rates were measured on (with rates_top_layers)."},
    )

    def __post_init__(self) -> None:
        rates = {"train_tokens_per_s": self.train_tokens_per_s, "score_samples_per_s": self.score_samples_per_s}
        for key in ("first_pass_tokens_per_s", "stock_train_tokens_per_s", "stock_forward_tokens_per_s"):
            if getattr(self, key) is not None:
                rates[key] = getattr(self, key)
        for key, value in rates.items():
            if value <= 0:
                raise ValueError(f"time_model.{key} must be > 0, got {value}")
        if not 0 < self.score_model_fraction <= 1:
            raise ValueError(f"time_model.score_model_fraction must be in (0, 1], got {self.score_model_fraction}")
        if any(n <= 0 for n in self.plan_samples):
            raise ValueError(f"time_model.plan_samples must be positive sizes, got {self.plan_samples}")
        if (self.rates_top_layers is None) != (self.model_layers is None):
            raise ValueError(
                "time_model.rates_top_layers and time_model.model_layers go together (the tuned and the decoder "
                f"layers the rates were measured at): set both or neither; got {self.rates_top_layers} and "
                f"{self.model_layers}"
            )
        if self.model_layers is not None and self.model_layers < 2:
            raise ValueError(
                f"time_model.model_layers must be >= 2 (the model's decoder layers), got {self.model_layers}"
            )
        if self.model_layers is not None and not 1 <= self.rates_top_layers < self.model_layers:
            raise ValueError(
                f"time_model.rates_top_layers must be between 1 and model_layers - 1 ({self.model_layers - 1}), the "
                f"tuned layers of the run that measured the rates (a first pass needs frozen layers); got "
                f"{self.rates_top_layers}"
            )
