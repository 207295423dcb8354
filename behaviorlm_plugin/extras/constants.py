"""Names and defaults shared across the package: each lives here once.

Splits and files of a prepared dataset (``DATASET_DIR/NAME/``), the registry file, and the
method's defaults that more than one config block uses.
"""

from __future__ import annotations

# ----------------------------------------------------------------------------- splits
BEHAVIOR_SPLITS = (
    "train_all",
    "train_anchor",
    "train_tail",
    "val",
    "test",
    "test_balanced",
    "val_balanced",
    "train_pool",
)
"""Alpaca JSONL splits that ``prepare`` writes, each with a line-aligned ``.meta.jsonl`` sidecar. ``val_balanced``
(val users, at most ``balanced_per_class`` per behavior) came last, on a random stream of its own, so the other
splits kept their bytes: it is where a class-balanced choice (alpha, a learning rate) is made, never on a test.
``train_pool`` (train users, at most ``pool_per_class`` per behavior, its own stream) is selection's pool when a run
asks for it: every behavior has its share there, where ``train_all``'s cap leaves a rare one a handful."""
FEATURE_SPLITS = ("train_all", "val", "test", "test_balanced", "val_balanced", "train_pool")
"""Splits with a ``.features.npz`` (integer features for non-LLM baselines)."""
EVAL_SPLITS = ("val", "test", "test_balanced", "val_balanced")
"""Splits a run or a suite may evaluate on (the training splits are not evaluation data)."""
AUX_SPLIT = "aux"
MIX_SPLIT = "atuning_mix"
ALL_SPLITS = (*BEHAVIOR_SPLITS, AUX_SPLIT, MIX_SPLIT)
USER_SPLITS = ("train", "val", "test")
"""The user-level split; ``train`` users feed train_all/anchor/tail."""

# ----------------------------------------------------------------------------- files
DATASET_INFO = "dataset_info.json"
STATS_FILE = "stats.json"
META_SUFFIX = ".meta.jsonl"
FEATURES_SUFFIX = ".features.npz"

# ----------------------------------------------------------------------------- method defaults
AUX_RATIO = 0.05
"""λ, the paper's share of general conversations in A-Tuning (auxiliary / anchor samples)."""
K_PER_BEHAVIOR = 20
"""B-Tuning samples per behavior (paper: ~20)."""
ANCHOR_THRESHOLD = 0.01
HEAD_THRESHOLD = 0.05
MEDIUM_THRESHOLD = 0.01
HISTORY_LEN = 20
SYNTHETIC_USERS = 2000
SYNTHETIC_DAYS = 60
SYNTHETIC_CANARY = "canary"
"""``prepare --synthetic canary``: the simulator's users, times and places with behavior a fixed function of the
event's place (or place and part of the day): the "can my set-up learn at all?" log (``data/canary.py``)."""
CANARY_RULE = "place"
"""The canary's rule when ``canary_rule`` is not given: behavior = f(place)."""
TEMPLATE_AUTO = "auto"
"""``template: auto`` reads the default model's marker, else the tokenizer's own chat template."""


def check_dataset_name(name: str, what: str = "--name") -> str:
    """Dataset and entry names: letters, digits, '_' and '-', at most 100 characters (they become file names)."""
    plain = isinstance(name, str) and name.replace("_", "").replace("-", "").isalnum()
    if not plain or len(name) > 100:
        raise ValueError(f"{what} must be 1-100 letters, digits, '_' or '-', got {name!r}")
    return name


def btuning_dataset_name(name: str, run_tag: str | None = None) -> str:
    """The registered name of a B-Tuning set: ``NAME_btuning`` (plain recipes) or ``NAME_btuning_<tag>`` (a run)."""
    return f"{name}_btuning" + (f"_{run_tag}" if run_tag else "")


def dataset_file_stem(name: str, dataset: str) -> str:
    """File stem of a registered dataset under ``NAME/``: ``NAME_btuning_x`` -> ``btuning_x``."""
    return dataset.removeprefix(f"{name}_")
