"""``behaviorlm prepare``: events -> samples -> prompts -> registered LLaMA-Factory datasets (orchestration only).

Writes, under ``dataset_dir/NAME/``:

* ``train_all``, ``train_anchor``, ``train_tail``, ``val``, ``test``, ``test_balanced``
  (alpaca JSONL) each with a ``.meta.jsonl`` sidecar aligned line by line (id, user,
  label, categories, candidate list, format) for scoring and selection, and a
  ``.features.npz`` of the same samples for non-LLM baselines;
* ``aux`` (ShareGPT, the filtered auxiliary conversations) and ``atuning_mix``
  (ShareGPT: train_anchor + exactly round(λ·|train_anchor|) aux conversations);
* ``stats.json`` (read back through :class:`behaviorlm_plugin.data.dataset.DatasetStats`);

and registers ``NAME_<split>`` entries in ``dataset_dir/dataset_info.json``.
"""

from __future__ import annotations

import gc
import logging
import shutil
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path

from behaviorlm_plugin.data import aux_data, store
from behaviorlm_plugin.data.beside import BesideError, beside
from behaviorlm_plugin.data.dataset import DatasetError, DatasetStats
from behaviorlm_plugin.data.dataset_stats import build_stats
from behaviorlm_plugin.data.loaders import check_format_name, open_source
from behaviorlm_plugin.data.oracle import ORACLE_SPLITS, ORACLE_SUFFIX, write_oracle
from behaviorlm_plugin.data.registry import (
    RegistrationError,
    check_registration,
    check_writable,
    entries_under,
    make_entry,
    read_dataset_info,
    register_datasets,
    unregister_datasets,
)
from behaviorlm_plugin.data.sample_rows import SplitRows, conversation_lines, jsonl_text, mix_lines, render_splits
from behaviorlm_plugin.data.windows import Windows, build_windows, write_features
from behaviorlm_plugin.extras.constants import (
    ALL_SPLITS,
    AUX_SPLIT,
    BEHAVIOR_SPLITS,
    FEATURE_SPLITS,
    FEATURES_SUFFIX,
    MIX_SPLIT,
    STATS_FILE,
)
from behaviorlm_plugin.extras.fileio import atomic_write_json, atomic_write_text, disk_full, is_disk_full
from behaviorlm_plugin.extras.hashing import file_hash
from behaviorlm_plugin.hparams.data_args import PrepareArguments
from behaviorlm_plugin.model.paths import TOKENIZER_FILES, check_model_path

logger = logging.getLogger(__name__)

__all__ = ["ALL_SPLITS", "BEHAVIOR_SPLITS", "dataset_entries", "ensure_prepared", "prepare"]


def dataset_entries(name: str) -> dict[str, dict]:
    """The dataset_info.json entries ``prepare`` registers for ``name``."""
    entries = {f"{name}_{s}": make_entry(f"{name}/{s}.jsonl", "alpaca") for s in BEHAVIOR_SPLITS}
    for s in (AUX_SPLIT, MIX_SPLIT):
        entries[f"{name}_{s}"] = make_entry(f"{name}/{s}.jsonl", "sharegpt")
    return entries


def _load_tokenizer(args: PrepareArguments):
    if not args.tokenizer:
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(args.tokenizer)


def build_aux(args: PrepareArguments, anchor_records: list[dict], tokenizer) -> tuple[list[dict], list[dict], dict]:
    """(kept aux conversations, the A-Tuning mix, the stats' aux section)."""
    count = aux_data.tokenizer_counter(tokenizer) if tokenizer else aux_data.approx_token_count
    pool = aux_data.load_conversations(args.aux_file)
    kept, dropped = aux_data.filter_by_tokens(pool, args.aux_max_tokens, count)
    if not kept and args.aux_ratio > 0:
        source = args.aux_file or aux_data.default_aux_path()
        raise aux_data.AuxDataError(
            f"{source}: no conversation left ({len(pool)} loaded, {dropped} over --aux-max-tokens "
            f"{args.aux_max_tokens}); add conversations, raise the budget, or set --aux-ratio 0"
        )
    mix, info = aux_data.build_atuning_mix(
        anchor_records, kept, aux_ratio=args.aux_ratio, anchors=args.mix_anchor_samples, seed=args.seed
    )
    stats = {
        "file": str(args.aux_file or aux_data.default_aux_path().name),
        "loaded": len(pool),
        "dropped_over_token_budget": dropped,
        "kept": len(kept),
        "max_tokens": args.aux_max_tokens,
        "token_counter": "tokenizer" if tokenizer else "approx",
        "ratio": args.aux_ratio,
        "used_in_mix": info["aux"],
        "pool_repeats": info["aux_pool_repeats"],
        "mix_anchor_samples": info["anchors"],
        "mix_size": info["n"],
        "exact_ratio": (info["aux"] / info["anchors"]) if info["anchors"] else 0.0,
    }
    return kept, mix, stats


# What the forked writer writes (the largest texts; the rest, with the features and the A-Tuning mix, here):
# the two halves then take about as long.
FORKED_FILES = ("train_all.jsonl", "train_all.meta.jsonl", "train_anchor.jsonl")


def write_dataset(
    base: Path, w: Windows, args: PrepareArguments, rows: dict[str, SplitRows], aux_kept: list[dict], mix: list[dict]
) -> None:
    """Every file of the dataset: the largest JSONL files in a second process (``data/beside.py``) while this
    one writes the features and the other files."""
    store.pause_point("writing")
    texts = []
    for split in BEHAVIOR_SPLITS:
        texts += [(f"{split}.jsonl", lambda s=split: rows[s].record_lines)]
        texts += [(f"{split}.meta.jsonl", lambda s=split: rows[s].meta_lines)]
    # The mix's lines before the fork: building them touches every anchor row, which after a fork would copy
    # each touched page (copy-on-write) in this process.
    aux_lines, mix_text_lines = conversation_lines(aux_kept), mix_lines(mix, rows["train_anchor"])
    texts += [(f"{AUX_SPLIT}.jsonl", lambda: aux_lines), (f"{MIX_SPLIT}.jsonl", lambda: mix_text_lines)]

    def files(forked: bool):
        mine = [(name, lines) for name, lines in texts if (name in FORKED_FILES) == forked]
        return ((base / name, lambda lines=lines: jsonl_text(lines())) for name, lines in mine)

    with beside(lambda: _write_overlapped(files(True)), f"writing {', '.join(FORKED_FILES)} to {base}"):
        for split in FEATURE_SPLITS:
            write_features(base / f"{split}{FEATURES_SUFFIX}", w.enc, w.chosen[split], args.history_len)
        _write_overlapped(files(False))


def _write_overlapped(files) -> None:
    """``atomic_write_text`` of each (path, make_text), the disk write of one file overlapping the building of
    the next (the write and fsync release the GIL); at most one finished text waits, so memory stays flat."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = None
        for path, make_text in files:
            text = make_text()
            if pending is not None:
                pending.result()
            pending = pool.submit(atomic_write_text, path, text)
            del text
        if pending is not None:
            pending.result()


def _check_target(out_dir: Path, args: PrepareArguments, entries: dict[str, dict], log) -> None:
    """Before any work: the folder and registry are writable, and an existing dataset is only replaced on request.

    ``DIR/NAME`` is only ever replaced when it is a dataset ``prepare`` made: a link to one of its versions,
    or (from before versioning) a folder with a ``stats.json``.  Anything else there is the user's and is
    never touched.
    """
    check_writable(out_dir)
    check_registration(out_dir, entries, overwrite=args.overwrite)
    existing = out_dir / args.name
    if not existing.exists() and not existing.is_symlink():
        return
    ours = store.is_versioned(out_dir, args.name) or (existing.is_dir() and (existing / STATS_FILE).is_file())
    if not ours:
        raise RegistrationError(
            f"{existing}: already exists and is not a dataset `behaviorlm prepare` made; it is left untouched. "
            "Move it away or choose another --name"
        )
    registered = set(entries) & set(read_dataset_info(out_dir))
    if registered and not args.overwrite:
        raise RegistrationError(
            f"{existing}: a dataset named {args.name!r} is already prepared and registered there; pass --overwrite "
            "to replace it (its B-Tuning sets are unregistered with it), or choose another --name"
        )
    if not registered and not store.is_versioned(out_dir, args.name) and not args.overwrite:
        raise RegistrationError(
            f"{existing}: holds an unregistered prepared dataset (from before versioned folders); pass --overwrite "
            "to replace it, or choose another --name"
        )
    if not registered:
        log(f"[prepare] {existing} is not registered (an interrupted run); replacing it")


def _commit(out_dir: Path, name: str, staging: Path, entries: dict[str, dict]) -> None:
    """Swap the new version in (the atomic commit) and register it; see ``data/store.py``."""
    store.adopt_legacy(out_dir, name)
    stale = sorted(set(entries_under(out_dir, name)) - set(entries))  # B-Tuning sets built from the old data
    unregister_datasets(out_dir, stale)
    store.pause_point("unregistered")
    store.commit(out_dir, name, staging)
    register_datasets(dataset_dir=out_dir, entries=entries, overwrite=True)
    store.pause_point("registered")
    store.recover(out_dir, name)  # drop the old version


@contextmanager
def _no_cycle_collector():
    """Rows are hundreds of thousands of acyclic dicts and strings: while they are built, the cycle collector
    would rescan them again and again for nothing to free (a third of the rendering time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def progress(message: str) -> None:
    """Where a long prepare says what it is doing (stderr, so piped stdout stays the summary)."""
    print(message, file=sys.stderr, flush=True)


def prepare(args: PrepareArguments, log=progress) -> dict:
    """Run the whole preparation; returns the stats dict (also written to stats.json).

    All or nothing: the dataset is built in a staging folder and committed in one atomic step, under
    a lock on its name (see ``data/store.py``), so a kill or a concurrent run never leaves a mix.
    """
    t0 = time.perf_counter()
    check_format_name(args.format)
    out_dir = Path(args.dataset_dir)
    entries = dataset_entries(args.name)
    _check_target(out_dir, args, entries, log)  # fail before any work or write
    if args.tokenizer:
        check_model_path(args.tokenizer, what="--tokenizer", needs=TOKENIZER_FILES)
    out_dir.mkdir(parents=True, exist_ok=True)
    with store.name_lock(out_dir, args.name):
        store.recover(out_dir, args.name)
        _check_target(out_dir, args, entries, log)  # again under the lock: another run may have finished
        timings: dict[str, float] = {}

        def lap(key: str, since: float) -> float:
            now = time.perf_counter()
            timings[key] = now - since
            return now

        table, source_stats = open_source(args, log=log)
        if args.events:
            source_stats["content_sha256"] = file_hash(args.events)  # ensure_prepared notices an edited log
        t = lap("load_events_s", t0)
        try:
            windows = build_windows(table, args, source_stats["source"], log=log)
        finally:
            table.close()
        t = lap("windows_s", t)
        log(f"[prepare] rendering {sum(len(c) for c in windows.chosen.values()):,} prompts ({t - t0:.1f}s)")
        with _no_cycle_collector():
            rows = render_splits(windows, args)
            t = lap("render_prompts_s", t)
            tokenizer = _load_tokenizer(args)
            aux_kept, mix, aux_stats = build_aux(args, rows["train_anchor"].records, tokenizer)
            t = time.perf_counter()
            log(f"[prepare] writing {out_dir / args.name} ({t - t0:.1f}s)")
            staging = store.staging_dir(out_dir, args.name)
            with _disk_full_cleans(staging):
                write_dataset(staging, windows, args, rows, aux_kept, mix)
                if args.synthetic:  # the simulator's true next-behavior distributions (data/oracle.py)
                    write_oracle(staging, windows, rows, args)
            lap("write_s", t)
            stats = build_stats(windows, args, source_stats, rows, aux_stats, tokenizer)
        timings["total_s"] = time.perf_counter() - t0
        stats["timings"] = {k: round(v, 3) for k, v in timings.items()}
        with _disk_full_cleans(staging):
            atomic_write_json(staging / STATS_FILE, stats)
        store.pause_point("staged")
        _commit(out_dir, args.name, staging, entries)
    return stats


@contextmanager
def _disk_full_cleans(staging: Path) -> Iterator[None]:
    """A full disk while the dataset is staged: remove the staging folder (it was never committed, so nothing
    the user had changes) and say where, how much the dataset had reached and what is free."""
    try:
        yield
    except (OSError, BesideError) as err:
        if not (is_disk_full(err) or (isinstance(err, BesideError) and err.disk_full)):
            raise
        written = sum(f.stat().st_size for f in staging.rglob("*") if f.is_file()) if staging.exists() else 0
        shutil.rmtree(staging, ignore_errors=True)
        raise disk_full(
            staging, None, f"writing the dataset (it had reached {written / 1e6:.1f} MB; it needs more than that)"
        ) from err


NOT_DATA = ("overwrite", "engine", "engine_memory_limit", "engine_threads", "engine_temp_dir")  # speed, not data
ADDED_LATER = {"split_by": "user", "time_split": "0.1,0.1", "pool_per_class": 200, "canary_rule": None}
"""Arguments added after stats.json first recorded them, at their defaults: an older stats.json holds these."""


def _comparable(arguments: dict) -> dict:
    return {k: v for k, v in (ADDED_LATER | arguments).items() if k not in NOT_DATA}


def _missing_files(args: PrepareArguments, folder: Path) -> str | None:
    """What a dataset prepared by an earlier version lacks (the same data otherwise), or None."""
    if not all((folder / f"{s}.jsonl").exists() for s in BEHAVIOR_SPLITS):
        return "split files of this version (val_balanced, train_pool)"
    if args.synthetic and not all((folder / f"{s}{ORACLE_SUFFIX}").exists() for s in ORACLE_SPLITS):
        return "simulator oracle files"
    return None


def ensure_prepared(args: PrepareArguments, log=print) -> bool:
    """Reuse ``DIR/NAME`` when its ``stats.json`` records exactly these arguments; else prepare it.

    Returns True when the existing data was reused.  Used by the pipeline and the benchmark, so a
    shared dataset is never rebuilt, never silently reused with other arguments, and never replaced
    unless ``args.overwrite`` says so.
    """
    stats_path = Path(args.dataset_dir) / args.name / STATS_FILE
    if stats_path.exists():
        try:
            recorded = DatasetStats.read(stats_path)
            existing, source = recorded.arguments, recorded.raw.get("source", {})
        except DatasetError as err:
            existing, source = {}, {}
            log(f"[prepare] {err}")
        wanted = _comparable(asdict(args))
        same_log = not args.events or source.get("content_sha256") == file_hash(args.events)
        missing = _missing_files(args, stats_path.parent)
        if _comparable(existing) == wanted and same_log and missing:
            # prepared by an earlier version: the same data, but a step that reads the missing files would fail late
            log(f"[prepare] {stats_path.parent} has no {missing}; re-preparing (the other files keep their bytes)")
            prepare(replace(args, overwrite=True), log=log)
            return False
        if _comparable(existing) == wanted and same_log:
            log(f"[prepare] {stats_path} already has these arguments; not re-preparing")
            return True
        existing = _comparable(existing)
        changed = sorted(k for k in set(existing) | set(wanted) if existing.get(k) != wanted.get(k))
        changed += [] if same_log else [f"the content of {args.events}"]
        if not args.overwrite:
            raise RegistrationError(
                f"{stats_path.parent} was prepared with other arguments ({', '.join(changed)}); set "
                "prepare.overwrite: true to replace it, or give prepare.name another name"
            )
        log(f"[prepare] {stats_path.parent} was prepared with other arguments ({', '.join(changed)}); re-preparing")
    prepare(args, log=log)
    return False
