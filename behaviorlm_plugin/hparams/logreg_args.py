"""The logistic-regression baseline's settings (``behaviorlm logreg`` and the bench's ``logreg`` rows)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LogRegConfig:
    r"""A multinomial logistic regression on the facts a prompt carries, one-hot: the next event's place, hour and
    day of week, the last ``history`` behaviors and the last place. The classical same-budget row: it sees the
    same samples as the LLM rows, in the form a linear model can use.
    """

    history: int = field(
        default=5, metadata={"help": "Past behaviors used (the most recent first; at most the data's)."}
    )
    c: float = field(default=1.0, metadata={"help": "Inverse L2 strength (scikit-learn's C)."})
    max_iter: int = field(default=1000, metadata={"help": "lbfgs iterations."})

    def __post_init__(self) -> None:
        if self.history < 0:
            raise ValueError(f"logreg history must be >= 0, got {self.history}")
        if not self.c > 0:
            raise ValueError(f"logreg c must be > 0, got {self.c}")
        if self.max_iter < 1:
            raise ValueError(f"logreg max_iter must be >= 1, got {self.max_iter}")


@dataclass
class LogRegTarget:
    r"""``behaviorlm logreg``: which prepared dataset, how many training samples, where the predictions go."""

    dataset_dir: str = field(default="data", metadata={"help": "Folder of the prepared datasets."})
    name: str = field(default="behavior", metadata={"help": "Dataset name (DIR/NAME)."})
    out_dir: str = field(default="runs/logreg", metadata={"help": "<split>/preds.jsonl, metrics and logreg.json."})
    train_size: int | None = field(
        default=None, metadata={"help": "A seeded natural subset of train_all (None: all of it)."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the subset (the same draw as a bench subset step)."})

    def __post_init__(self) -> None:
        if self.train_size is not None and self.train_size < 1:
            raise ValueError(f"--train-size must be >= 1, got {self.train_size}")
