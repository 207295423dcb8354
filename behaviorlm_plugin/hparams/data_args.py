"""Configuration dataclasses, in LLaMA-Factory's ``hparams`` style.

Each field carries its help text; checks live in ``__post_init__`` so a bad value
fails when the config is built (from the CLI, a YAML file or Python), not halfway
through a run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar, Literal, get_args

from behaviorlm_plugin.extras.constants import (
    ANCHOR_THRESHOLD,
    AUX_RATIO,
    CANARY_RULE,
    HEAD_THRESHOLD,
    HISTORY_LEN,
    MEDIUM_THRESHOLD,
    SYNTHETIC_CANARY,
    SYNTHETIC_DAYS,
    SYNTHETIC_USERS,
    check_dataset_name,
)

AUX_MAX_TOKENS = 512


MEMORY_RE = re.compile(r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)
DEFAULT_MEMORY_LIMIT = "2GB"
DEFAULT_CHUNK_ROWS = 1_000_000
CanaryRule = Literal["place", "place_hour"]
"""The canary's rules (``data/canary.py`` holds their tables): behavior = f(place), or f(place, part of the day)."""


def check_memory_limit(value: str) -> str:
    if not isinstance(value, str) or not MEMORY_RE.match(value.strip()):
        raise ValueError(f"engine.memory_limit must look like 2GB, 512MB or 1.5GiB; got {value!r}")
    return value.strip()


@dataclass(frozen=True)
class EngineArguments:
    r"""The ``engine:`` block of ``prepare``: how much the columnar engine (DuckDB) may use.

    None of it changes the prepared data, only speed and memory (``docs/data.md``).
    """

    memory_limit: str = field(
        default=DEFAULT_MEMORY_LIMIT,
        metadata={"help": "Memory the engine may hold, e.g. 2GB; past it, sorts and joins spill to temp_dir."},
    )
    threads: int | None = field(default=None, metadata={"help": "Engine threads (None: every core)."})
    temp_dir: str | None = field(
        default=None, metadata={"help": "Folder for the engine's database and spill files (None: system temp)."}
    )
    chunk_rows: int = field(
        default=DEFAULT_CHUNK_ROWS,
        metadata={"internal": True, "help": "Rows per batch that leaves the engine (text timestamps: pandas)."},
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "memory_limit", check_memory_limit(self.memory_limit))
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"engine.threads must be >= 1 or None, got {self.threads}")
        if self.chunk_rows < 1000:
            raise ValueError(f"engine chunk_rows must be >= 1000, got {self.chunk_rows}")


def parse_time_split(text: str) -> tuple[float, float, bool]:
    """'0.1,0.1' (fractions of each user's span) or '7d,7d' (days) -> (val, test, in_days)."""
    parts = [p.strip().lower() for p in str(text).split(",")]
    days = all(p.endswith("d") for p in parts)
    try:
        values = [float(p.removesuffix("d")) for p in parts]
    except ValueError:
        values = []
    if len(values) != 2 or min(values, default=-1) < 0 or (not days and any(p.endswith("d") for p in parts)):
        raise ValueError(f"--time-split must look like 0.1,0.1 (fractions of each user's span) or 7d,7d; got {text!r}")
    if not days and sum(values) >= 1:
        raise ValueError(f"--time-split fractions must leave some of each user's span to train; got {text!r}")
    if values[1] <= 0:
        raise ValueError(f"--time-split needs a test period above 0; got {text!r}")
    return values[0], values[1], days


@dataclass
class PrepareArguments:
    r"""Arguments of ``behaviorlm prepare``: raw events -> registered instruction datasets.

    Source (exactly one of ``events`` / ``synthetic``):
        events, format, column_map, timestamp_format, synthetic, synthetic_users, synthetic_days, canary_rule

    Output:
        dataset_dir, name, overwrite

    Samples and splits:
        seed, history_len, split_ratios, max_*_samples, balanced_per_class, thresholds

    Prompts:
        prompt_formats, prompt_template_files, fixed_candidate_order, tokenizer

    Auxiliary conversations (A-Tuning mix):
        aux_file, aux_ratio, aux_max_tokens

    Speed and memory only:
        engine (memory_limit, threads, temp_dir)
    """

    MOVED: ClassVar[dict[str, str]] = {
        "engine_memory_limit": "engine.memory_limit",
        "engine_threads": "engine.threads",
        "engine_temp_dir": "engine.temp_dir",
    }

    # --- source ---
    events: str | None = field(
        default=None,
        metadata={"help": "Events file (CSV/TSV/JSONL/JSON/Parquet, Foursquare TSMC2014 .txt) or App Usage dir."},
    )
    format: str = field(
        default="auto",
        metadata={
            "help": "Events format: 'auto' (by file suffix) or a registered one (behaviorlm formats lists them)."
        },
    )
    column_map: str | None = field(
        default=None,
        metadata={"help": "Map our columns to yours, e.g. 'user_id=uid,behavior=intent,place=loc,timestamp=time'."},
    )
    timestamp_format: str | None = field(
        default=None, metadata={"help": "strptime format of the timestamp column when it is not ISO 8601."}
    )
    timestamp_unit: Literal["auto", "s", "ms", "us", "ns"] = field(
        default="auto",
        metadata={"help": "Unit of numeric (epoch) timestamps; 'auto' tells seconds/ms/us/ns apart by magnitude."},
    )
    timezone: str | None = field(
        default=None,
        metadata={
            "help": "Convert every event to this IANA zone (e.g. Asia/Shanghai). Default: each event keeps the "
            "local wall-clock time it was written in (its own UTC offset is dropped)."
        },
    )
    foursquare_place: Literal["grid", "venue"] = field(
        default="grid",
        metadata={"help": "Foursquare place label: ~1 km grid cell, or venue id (leaks the category)."},
    )
    synthetic: bool | Literal["canary"] = field(
        default=False,
        metadata={
            "help": "Use the embedded simulator: bare --synthetic (true) for the long-tailed behaviors; "
            "--synthetic canary for the canary, the same users, times and places with behavior a fixed function "
            "of the place (--canary-rule): a cheap 'can my set-up learn at all?' check (docs/simulator.md)."
        },
    )
    synthetic_users: int = field(default=SYNTHETIC_USERS, metadata={"help": "Simulated users (with --synthetic)."})
    synthetic_days: int = field(
        default=SYNTHETIC_DAYS, metadata={"help": "Simulated days (with --synthetic), as in the paper."}
    )
    canary_rule: CanaryRule | None = field(
        default=None,
        metadata={
            "help": f"With --synthetic canary: behavior = f(next place) ('place', 7 behaviors) or f(next place, "
            f"part of the day) ('place_hour', 16 behaviors, some rare). None: {CANARY_RULE}."
        },
    )
    # --- output ---
    dataset_dir: str = field(default="data", metadata={"help": "LLaMA-Factory dataset_dir to write and register in."})
    name: str = field(default="behavior", metadata={"help": "Dataset name prefix: NAME_train_all, NAME_val, …"})
    overwrite: bool = field(
        default=False, metadata={"help": "Replace existing dataset_info.json entries of the same name."}
    )
    # --- samples and splits ---
    seed: int = field(default=42, metadata={"help": "Seed for split, sampling, prompt formats and candidate order."})
    history_len: int = field(default=HISTORY_LEN, metadata={"help": "Events of history per sample (paper: 20)."})
    split_ratios: str = field(default="0.8,0.1,0.1", metadata={"help": "User-level train,val,test ratios."})
    split_by: Literal["user", "time"] = field(
        default="user",
        metadata={
            "help": "'user': hold out whole users (--split-ratios; the paper). 'time': every user's last days are "
            "val then test (--time-split), the rest train; a deployed assistant's view (docs/data.md)."
        },
    )
    time_split: str = field(
        default="0.1,0.1",
        metadata={
            "help": "With --split-by time: the val,test periods at the end of each user's log, as fractions of the "
            "user's span (0.1,0.1) or days (7d,7d). No window crosses a cut."
        },
    )
    max_train_samples: int | None = field(
        default=20000, metadata={"help": "Cap on train_all samples (random subset; paper: 200k). None = all."}
    )
    max_val_samples: int | None = field(default=2000, metadata={"help": "Cap on val samples."})
    max_test_samples: int | None = field(default=5000, metadata={"help": "Cap on test samples."})
    balanced_per_class: int = field(
        default=500, metadata={"help": "Max samples per behavior in test_balanced and val_balanced."}
    )
    pool_per_class: int = field(
        default=200,
        metadata={
            "help": "Max samples per behavior in train_pool (train users): a selection pool where every behavior has "
            "its share (selection.pool: train_pool), however few the train_all cap leaves a rare one."
        },
    )
    anchor_threshold: float = field(
        default=ANCHOR_THRESHOLD, metadata={"help": "Anchor = training frequency above this."}
    )
    head_threshold: float = field(default=HEAD_THRESHOLD, metadata={"help": "Metrics: head = frequency above this."})
    medium_threshold: float = field(
        default=MEDIUM_THRESHOLD, metadata={"help": "Metrics: tail = frequency below this."}
    )
    min_events_per_user: int | None = field(
        default=None, metadata={"help": "Skip users with fewer events (default: history_len + 1)."}
    )
    # --- engine (speed and memory only; the data do not depend on these) ---
    engine: EngineArguments = field(
        default_factory=EngineArguments,
        metadata={"help": "The columnar engine's memory, threads and spill folder (speed only, never the data)."},
    )
    # --- prompts ---
    prompt_formats: str = field(
        default="instruct1,instruct2,instruct3",
        metadata={"help": "Comma-separated formats, one drawn at random per sample."},
    )
    prompt_template_files: str | None = field(
        default=None, metadata={"help": "Comma-separated .j2 files to register as extra formats (named by stem)."}
    )
    fixed_candidate_order: bool = field(
        default=False, metadata={"help": "List candidates in a fixed order instead of a random order per sample."}
    )
    tokenizer: str | None = field(
        default=None, metadata={"help": "HF tokenizer folder for prompt-length stats and the aux token filter."}
    )
    token_stats_samples: int = field(default=500, metadata={"help": "Prompts per split to measure token lengths on."})
    # --- auxiliary conversations ---
    aux_file: str | None = field(
        default=None, metadata={"help": "ShareGPT/alpaca JSON(L) of general conversations (default: shipped set)."}
    )
    aux_ratio: float = field(
        default=AUX_RATIO,
        metadata={
            "help": "λ: aux conversations per anchor sample, in [0, 10] (paper: 0.05; above 1: more aux than anchors)."
        },
    )
    aux_max_tokens: int = field(default=AUX_MAX_TOKENS, metadata={"help": "Drop aux conversations longer than this."})
    mix_anchor_samples: int | None = field(
        default=None,
        metadata={
            "help": "Use only N train_anchor samples (seeded) in atuning_mix, e.g. for a CPU budget; "
            "λ stays exact and train_all stays whole for selection. None = all."
        },
    )

    def __post_init__(self) -> None:
        # ``format`` is checked against the loader registry where it is used (data.loaders.check_format_name):
        # prepare checks it first, runs in their preflight.
        if self.synthetic not in (False, True, SYNTHETIC_CANARY):
            raise ValueError(f"--synthetic must be true, false or {SYNTHETIC_CANARY}, got {self.synthetic!r}")
        if self.canary_rule is not None and self.synthetic != SYNTHETIC_CANARY:
            raise ValueError(
                f"--canary_rule {self.canary_rule}: only read with --synthetic {SYNTHETIC_CANARY} (the canary log); "
                f"add --synthetic {SYNTHETIC_CANARY} (in YAML: synthetic: {SYNTHETIC_CANARY}), or drop --canary_rule"
            )
        if self.canary_rule is not None and self.canary_rule not in get_args(CanaryRule):
            rules = ", ".join(get_args(CanaryRule))
            raise ValueError(f"--canary_rule must be one of {rules}, got {self.canary_rule!r}")
        if self.synthetic == SYNTHETIC_CANARY and self.canary_rule is None:
            self.canary_rule = CANARY_RULE
        if bool(self.events) == bool(self.synthetic):
            raise ValueError("give exactly one source: --events FILE or --synthetic")
        if self.history_len < 1:
            raise ValueError(f"history_len must be >= 1, got {self.history_len}")
        check_dataset_name(self.name)
        if self.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {self.seed}")
        ratios = self.ratios
        if len(ratios) != 3 or min(ratios) < 0 or abs(sum(ratios) - 1) > 1e-6:
            raise ValueError(f"--split_ratios must be three non-negative numbers summing to 1, got {self.split_ratios}")
        for key in ("max_train_samples", "max_val_samples", "max_test_samples"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ValueError(f"--{key} must be >= 1 or None, got {value}")
        if self.pool_per_class < 1:
            raise ValueError("--pool_per_class must be >= 1")
        if self.balanced_per_class < 1:
            raise ValueError("--balanced_per_class must be >= 1")
        if not 0 < self.anchor_threshold < 1:
            raise ValueError("--anchor_threshold must be in (0, 1)")
        if not 0 <= self.medium_threshold <= self.head_threshold < 1:
            raise ValueError("need 0 <= --medium_threshold <= --head_threshold < 1")
        if not 0 <= self.aux_ratio <= 10:
            raise ValueError("--aux_ratio must be in [0, 10]")
        if self.mix_anchor_samples is not None and self.mix_anchor_samples < 1:
            raise ValueError("--mix_anchor_samples must be >= 1 or None")
        if self.aux_max_tokens < 1:
            raise ValueError("--aux_max_tokens must be >= 1")
        if self.synthetic and (self.synthetic_users < 10 or self.synthetic_days < 1):
            raise ValueError("--synthetic_users must be >= 10 (so every split gets users) and --synthetic_days >= 1")
        if self.min_events_per_user is None:
            self.min_events_per_user = self.history_len + 1
        if not self.format_list:
            raise ValueError(f"--prompt_formats needs at least one format name, got {self.prompt_formats!r}")
        if self.timezone is not None:
            import zoneinfo

            try:
                zoneinfo.ZoneInfo(self.timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError) as err:
                raise ValueError(f"--timezone {self.timezone!r} is not an IANA zone name (e.g. Europe/Paris)") from err
        if self.column_map:
            self.column_map_dict  # noqa: B018  (validates the syntax now)
        if self.split_by not in ("user", "time"):
            raise ValueError(f"--split-by must be user or time, got {self.split_by!r}")
        parse_time_split(self.time_split)

    @property
    def ratios(self) -> tuple[float, ...]:
        try:
            return tuple(float(x) for x in self.split_ratios.split(","))
        except ValueError as err:
            raise ValueError(f"--split_ratios must look like 0.8,0.1,0.1, got {self.split_ratios!r}") from err

    @property
    def column_map_dict(self) -> dict[str, str]:
        if not self.column_map:
            return {}
        pairs = [p.split("=", 1) for p in self.column_map.split(",") if p.strip()]
        if any(len(p) != 2 or not p[0].strip() or not p[1].strip() for p in pairs):
            raise ValueError(f"--column_map must look like 'behavior=intent,place=loc', got {self.column_map!r}")
        return {k.strip(): v.strip() for k, v in pairs}

    @property
    def format_list(self) -> tuple[str, ...]:
        return tuple(f.strip() for f in self.prompt_formats.split(",") if f.strip())
