"""Event sources: a registry of event formats, the loaders of public datasets, and :func:`load_source`.

Every loader produces the :mod:`behaviorlm_plugin.data.events` schema and ends in
:func:`~behaviorlm_plugin.data.events.validate_events`, so it returns ``(events_df, EventStats)``
with exactly the columns ``user_id, timestamp, place, behavior``. Problems in the files raise
:class:`~behaviorlm_plugin.data.events.BehaviorDataError` naming the file, the 1-based line (or the
offending id) and what to do about it.

* :func:`load_foursquare_tsmc` – Foursquare TSMC2014 check-ins
  (``dataset_TSMC2014_NYC.txt`` / ``dataset_TSMC2014_TKY.txt``).
* :func:`load_app_usage` / :func:`load_app_usage_dir` – Tsinghua App Usage dataset
  (``App_usage_trace.txt`` + ``App2Category.txt`` + ``Categorys.txt``).

``behaviorlm prepare --format NAME`` picks a registered event format; ``--format auto`` picks
the one that claims the file's suffix. Register a new one (in the style of PEFT's
``register_peft_method``)::

    def load_my_log(path: Path, args: PrepareArguments) -> tuple[pd.DataFrame, EventStats]:
        raw = ...  # read path
        return validate_events(raw, source=str(path), min_events_per_user=args.min_events_per_user)

    register_event_format(name="my_log", loader=load_my_log, suffixes=(".mylog",))

This module must stay light (no torch, no transformers): the config dataclass imports it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from behaviorlm_plugin.data.canary import canary_events
from behaviorlm_plugin.data.engine import EventTable, load_event_table, table_from_frame
from behaviorlm_plugin.data.engine.read import ENGINE_FORMATS
from behaviorlm_plugin.data.events import BehaviorDataError, EventStats, load_events
from behaviorlm_plugin.data.loaders.app_usage import load_app_usage, load_app_usage_dir
from behaviorlm_plugin.data.loaders.foursquare import load_foursquare_tsmc
from behaviorlm_plugin.data.simulator import SimulatorConfig, simulate_events
from behaviorlm_plugin.extras.constants import SYNTHETIC_CANARY

if TYPE_CHECKING:
    from behaviorlm_plugin.hparams.data_args import PrepareArguments

__all__ = [
    "EventFormat",
    "EventLoader",
    "format_names",
    "get_event_format",
    "load_app_usage",
    "load_app_usage_dir",
    "load_foursquare_tsmc",
    "load_source",
    "open_source",
    "register_event_format",
]

EventLoader = Callable[[Path, "PrepareArguments"], tuple[pd.DataFrame, EventStats]]

_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_SUFFIX_RE = re.compile(r"(\.[A-Za-z0-9_-]+)+")
_RESERVED_NAMES = frozenset({"auto"})  # --format auto means "by file suffix"


@dataclass(frozen=True)
class EventFormat:
    """A registered event format: how ``behaviorlm prepare --format NAME`` reads ``--events``."""

    name: str
    loader: EventLoader
    suffixes: tuple[str, ...] = ()  # lower-case; files with these suffixes use this format under --format auto
    description: str = ""


_FORMATS: dict[str, EventFormat] = {}
_SUFFIXES: dict[str, str] = {}  # suffix -> format name; each suffix belongs to one format


# --------------------------------------------------------------------------- registry


def _check_registration(name: object, loader: object, suffixes: object, description: object) -> tuple[str, ...]:
    """Validate :func:`register_event_format`'s inputs; returns the normalised (lower-case) suffixes."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ValueError(
            f"event format name must be a non-empty str of letters, digits and '_' starting with a letter, got {name!r}"
        )
    if name in _RESERVED_NAMES:
        raise ValueError(f"event format name {name!r} is reserved (--format {name} picks a format by file suffix)")
    if not callable(loader):
        raise ValueError(
            f"loader of event format {name!r} must be callable (path, args) -> (df, stats), got {loader!r}"
        )
    if isinstance(suffixes, str) or not isinstance(suffixes, tuple | list):
        raise ValueError(f"suffixes of event format {name!r} must be a tuple of str like ('.csv',), got {suffixes!r}")
    for suffix in suffixes:
        if not isinstance(suffix, str) or not _SUFFIX_RE.fullmatch(suffix):
            raise ValueError(
                f"suffix {suffix!r} of event format {name!r} must start with '.' and be followed by letters, "
                "digits, '_' or '-' (e.g. '.csv' or '.csv.gz')"
            )
    if not isinstance(description, str):
        raise ValueError(f"description of event format {name!r} must be a str, got {description!r}")
    return tuple(dict.fromkeys(s.lower() for s in suffixes))  # dedupe, keep order


def register_event_format(
    *,
    name: str,
    loader: EventLoader,
    suffixes: tuple[str, ...] = (),
    description: str = "",
    overwrite: bool = False,
) -> None:
    """Register an event format for ``behaviorlm prepare --format NAME`` (and ``--format auto``).

    ``loader(path, args)`` gets the ``--events`` path and the :class:`PrepareArguments` and returns
    ``(events_df, EventStats)``, normally by ending in :func:`~behaviorlm_plugin.data.events.validate_events`.
    ``suffixes`` (e.g. ``(".csv",)``, matched case-insensitively) are the file suffixes ``--format auto``
    sends to this format.

    Raises ``ValueError`` for a bad name, loader or suffix, and, unless ``overwrite=True``, for a name
    already registered or a suffix another format already claims. With ``overwrite=True`` the new
    format replaces the one of the same name and takes over the suffixes it lists.
    """
    suffixes = _check_registration(name, loader, suffixes, description)
    if not overwrite:
        if name in _FORMATS:
            raise ValueError(f"event format {name!r} is already registered; pick another name or pass overwrite=True")
        taken = {s: _SUFFIXES[s] for s in suffixes if s in _SUFFIXES}
        if taken:
            raise ValueError(
                f"suffix(es) of event format {name!r} already claimed: "
                + ", ".join(f"{s!r} by {owner!r}" for s, owner in taken.items())
                + "; drop them or pass overwrite=True"
            )
    old = _FORMATS.pop(name, None)
    for suffix in old.suffixes if old else ():
        _SUFFIXES.pop(suffix, None)
    for suffix in suffixes:
        owner = _SUFFIXES.get(suffix)
        if owner is not None:  # overwrite=True: take the suffix from its owner
            kept = tuple(s for s in _FORMATS[owner].suffixes if s != suffix)
            _FORMATS[owner] = dataclasses.replace(_FORMATS[owner], suffixes=kept)
        _SUFFIXES[suffix] = name
    _FORMATS[name] = EventFormat(name=name, loader=loader, suffixes=suffixes, description=description)


def format_names() -> tuple[str, ...]:
    """Names of the registered event formats, sorted (``--format`` also accepts ``auto``)."""
    return tuple(sorted(_FORMATS))


def check_format_name(name: str, *, source: str = "--format") -> None:
    """``auto`` or a registered format's name, or the error a config with a typo gets before any work."""
    if name != "auto" and name not in _FORMATS:
        raise ValueError(f"{source} must be auto or one of {', '.join(format_names())}; got {name!r}")


def get_event_format(name: str) -> EventFormat:
    """The registered event format ``name``; a ``ValueError`` lists the known ones otherwise."""
    try:
        return _FORMATS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown event format {name!r}; known formats: {', '.join(format_names())} "
            "(register one with register_event_format)"
        ) from None


def _format_for_path(path: Path) -> EventFormat:
    """The format claiming ``path``'s suffix (longest match, case-insensitive), for ``--format auto``."""
    if path.is_dir() and "parquet" in _FORMATS and next(path.rglob("*.parquet"), None) is not None:
        return _FORMATS["parquet"]  # a folder of Parquet parts
    for k in range(len(path.suffixes), 0, -1):
        owner = _SUFFIXES.get("".join(path.suffixes[-k:]).lower())
        if owner is not None:
            return _FORMATS[owner]
    if not path.exists():
        raise BehaviorDataError(f"{path}: file not found.")
    raise BehaviorDataError(
        f"{path}: cannot tell the format from suffix {path.suffix!r}; use one of {sorted(_SUFFIXES)} or pass --format."
    )


# --------------------------------------------------------------------------- load_source


def _synthetic_source(args: PrepareArguments) -> tuple[pd.DataFrame, EventStats]:
    """The embedded simulator's events (or the canary's), users with too few events dropped and counted."""
    cfg = SimulatorConfig(num_users=args.synthetic_users, num_days=args.synthetic_days, seed=args.seed)
    size = f"users={cfg.num_users}, days={cfg.num_days}, seed={cfg.seed}"
    if args.synthetic == SYNTHETIC_CANARY:
        df, source = canary_events(cfg, args.canary_rule), f"canary(rule={args.canary_rule}, {size})"
    else:
        df, source = simulate_events(cfg), f"synthetic({size})"
    counts = df.groupby("user_id", observed=True).size()
    keep = counts[counts >= args.min_events_per_user].index
    stats = EventStats(source=source)
    stats.rows_in, stats.users_in = len(df), len(counts)
    stats.users_skipped_too_few_events = int((counts < args.min_events_per_user).sum())
    df = df[df["user_id"].isin(keep)].reset_index(drop=True)
    stats.events_skipped_too_few_events = stats.rows_in - len(df)
    stats.rows_out = len(df)
    return df, stats


def load_source(args: PrepareArguments) -> tuple[pd.DataFrame, dict]:
    """Events frame (validated, sorted) and the source's stats: :func:`open_source`, read back into pandas.

    For small logs (tests, notebooks); ``prepare`` keeps the events in the engine.
    """
    table, stats = open_source(args)
    try:
        return table.to_frame(), stats
    finally:
        table.close()


def open_source(args: PrepareArguments, log=None) -> tuple[EventTable, dict]:
    """The validated, ordered events in the engine and the source's stats, for ``behaviorlm prepare``.

    ``args.synthetic`` runs the simulator (or the canary); otherwise ``args.format`` names the registered event
    format, or ``auto`` picks the one claiming the suffix of ``args.events``.  A format's loader returns an
    :class:`EventTable` (the engine's readers) or, for small sources, a validated pandas frame.
    """
    settings = args.engine
    if args.synthetic:
        df, stats = _synthetic_source(args)
        return table_from_frame(df, stats, settings), stats.to_dict()
    path = Path(args.events)
    fmt = _format_for_path(path) if args.format == "auto" else get_event_format(args.format)
    if fmt.name in ENGINE_LOADERS and fmt.loader is ENGINE_LOADERS[fmt.name]:
        table = fmt.loader(path, args, log=log)
        return table, table.stats.to_dict()
    df, stats = fmt.loader(path, args)
    if not isinstance(stats, EventStats):
        raise TypeError(
            f"event format {fmt.name!r}: loader must return (DataFrame, EventStats), got stats {type(stats).__name__}"
        )
    return table_from_frame(df.reset_index(drop=True), stats, settings), stats.to_dict()


# --------------------------------------------------------------------------- built-in formats


def _engine_loader(fmt: str):
    def load(path: Path, args: PrepareArguments, log=None) -> EventTable:
        return load_event_table(
            path,
            column_map=args.column_map_dict,
            fmt=fmt,
            timestamp_format=args.timestamp_format,
            timestamp_unit=args.timestamp_unit,
            timezone=args.timezone,
            min_events_per_user=args.min_events_per_user,
            settings=args.engine,
            log=log,
        )

    load.__name__ = load.__qualname__ = f"load_{fmt}_events"
    return load


def _table_loader(fmt: str) -> EventLoader:
    def load(path: Path, args: PrepareArguments) -> tuple[pd.DataFrame, EventStats]:
        return load_events(
            path,
            column_map=args.column_map_dict,
            fmt=fmt,
            timestamp_format=args.timestamp_format,
            timestamp_unit=args.timestamp_unit,
            timezone=args.timezone,
            min_events_per_user=args.min_events_per_user,
        )

    load.__name__ = load.__qualname__ = f"load_{fmt}_events"
    return load


def _load_foursquare(path: Path, args: PrepareArguments) -> tuple[pd.DataFrame, EventStats]:
    return load_foursquare_tsmc(path, place=args.foursquare_place, min_events_per_user=args.min_events_per_user)


def _load_app_usage(path: Path, args: PrepareArguments) -> tuple[pd.DataFrame, EventStats]:
    return load_app_usage_dir(path, min_events_per_user=args.min_events_per_user)


_TABLES = {
    "csv": "comma-separated table with a header (--column-map renames columns)",
    "tsv": "tab-separated table with a header (--column-map renames columns)",
    "jsonl": "one JSON object per line (--column-map renames keys)",
    "json": "a JSON array of records (--column-map renames keys)",
    "parquet": "Parquet table, or a folder of Parquet parts (--column-map renames columns)",
}


ENGINE_LOADERS = {name: _engine_loader(name) for name in ENGINE_FORMATS}
"""The built-in formats the engine reads itself (a folder of Parquet parts goes with ``parquet``)."""


def _register_builtins() -> None:
    for name, description in _TABLES.items():
        suffixes = (f".{name}", f".{name}.gz") if name in ("csv", "tsv", "jsonl") else (f".{name}",)
        loader = ENGINE_LOADERS.get(name) or _table_loader(name)
        register_event_format(name=name, loader=loader, suffixes=suffixes, description=description)
    register_event_format(
        name="foursquare",
        loader=_load_foursquare,
        description="Foursquare TSMC2014 check-ins (dataset_TSMC2014_NYC.txt / _TKY.txt); see --foursquare-place",
    )
    register_event_format(
        name="app_usage",
        loader=_load_app_usage,
        description="Tsinghua App Usage folder (App_usage_trace.txt, App2Category.txt, Categorys.txt)",
    )


_register_builtins()
