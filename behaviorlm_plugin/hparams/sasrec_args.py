"""The SASRec baseline's settings and its search grid (used by ``behaviorlm sasrec`` and the bench)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal

DEFAULT_SASREC_GRID: dict[str, list] = {"lr": [3e-4, 1e-3, 3e-3], "d_model": [32, 64, 128]}
"""Searched on val accuracy; the defaults below are its centre."""


@dataclass
class SASRecConfig:
    r"""Model and training settings of the SASRec baseline.

    Model: d_model, n_layers, n_heads, dropout, pre_ln
    Training: lr, weight_decay, batch_size, max_epochs, patience (early stopping on val accuracy), seed
    Loss: loss (ce, or logit_adjusted: a tail-aware baseline), loss_tau
    Hardware: device
    """

    d_model: int = field(default=64, metadata={"help": "Embedding and hidden size."})
    n_layers: int = field(default=2, metadata={"help": "Transformer layers."})
    n_heads: int = field(default=2, metadata={"help": "Attention heads (must divide d_model)."})
    dropout: float = field(default=0.2, metadata={"help": "Dropout."})
    pre_ln: bool = field(default=True, metadata={"help": "Pre-LN (true) or Post-LN (false) encoder layers."})
    lr: float = field(default=1e-3, metadata={"help": "AdamW learning rate."})
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay."})
    batch_size: int = field(default=256, metadata={"help": "Training batch size."})
    max_epochs: int = field(default=30, metadata={"help": "Epoch limit."})
    patience: int = field(default=4, metadata={"help": "Epochs without a val improvement before stopping."})
    seed: int = field(default=0, metadata={"help": "Seed of initialisation, batch order and train subsets."})
    loss: Literal["ce", "logit_adjusted"] = field(
        default="ce",
        metadata={
            "help": "ce, or logit_adjusted: cross-entropy on logits + loss_tau * log train prior (Menon et al. "
            "2021; tau 1 = balanced softmax); early stopping then uses val mean per-class accuracy."
        },
    )
    loss_tau: float = field(default=1.0, metadata={"help": "tau of the logit-adjusted loss (>= 0)."})
    device: str = field(
        default="cpu", metadata={"help": "cpu, cuda, cuda:N or auto (cuda when available); predictions return to CPU."}
    )

    def __post_init__(self) -> None:
        if self.device not in ("cpu", "cuda", "auto") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be cpu, cuda, cuda:N or auto, got {self.device!r}")
        if self.device != "cpu":
            import torch

            if self.device == "auto":
                self.device = "cuda" if torch.cuda.is_available() else "cpu"
            elif not torch.cuda.is_available():
                raise ValueError(f"device {self.device!r} asked for, but torch sees no CUDA device; use device: cpu")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.loss not in ("ce", "logit_adjusted") or self.loss_tau < 0:
            raise ValueError(f"loss must be ce or logit_adjusted and loss_tau >= 0, got {self.loss!r}, {self.loss_tau}")
        if self.max_epochs < 1 or self.patience < 1:
            raise ValueError("max_epochs and patience must be >= 1")


def check_grid(grid: dict[str, list], where: str = "grid") -> dict[str, list]:
    """A search grid over SASRecConfig fields, each with a non-empty list of values."""
    known = {f.name for f in fields(SASRecConfig)} - {"seed", "device"}
    for key, values in grid.items():
        if key not in known:
            raise ValueError(f"{where}.{key}: not a SASRec setting; choose from {', '.join(sorted(known))}")
        if not isinstance(values, list) or not values:
            raise ValueError(f"{where}.{key}: expected a non-empty list of values, got {values!r}")
    return grid
