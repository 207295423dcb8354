"""``behaviorlm prepare``: events -> samples -> prompts -> registered LLaMA-Factory datasets.

Writes, under ``dataset_dir/NAME/``:

* ``train_all``, ``train_anchor``, ``train_tail``, ``val``, ``test``, ``test_balanced``
  (alpaca JSONL) each with a ``.meta.jsonl`` sidecar aligned line by line (id, user,
  label, categories, candidate list, format) for scoring and selection;
* ``aux`` (ShareGPT, the filtered auxiliary conversations) and ``atuning_mix``
  (ShareGPT: train_anchor + exactly round(λ·|train_anchor|) aux conversations);
* ``stats.json``;

and registers ``NAME_<split>`` entries in ``dataset_dir/dataset_info.json``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from . import aux_data
from .config import PrepareArguments
from .events import BehaviorDataError, EventStats, load_events
from .fileio import atomic_write_json, atomic_write_jsonl
from .prompts import PromptOptions, load_prompt_format_file, render_prompts, system_prompt
from .registry import check_registration, make_entry, register_datasets
from .samples import (
    EncodedEvents,
    balanced_subset,
    context_baseline,
    encode_events,
    frequency_categories,
    history_indices,
    split_users,
    subsample,
    window_targets,
)
from .simulator import PAPER_BEHAVIOR_PROPORTIONS, SimulatorConfig, simulate_events, total_variation

logger = logging.getLogger(__name__)

BEHAVIOR_SPLITS = ("train_all", "train_anchor", "train_tail", "val", "test", "test_balanced")
ALL_SPLITS = (*BEHAVIOR_SPLITS, "aux", "atuning_mix")


def dataset_entries(name: str) -> dict[str, dict]:
    """The dataset_info.json entries ``prepare`` registers for ``name``."""
    entries = {f"{name}_{s}": make_entry(f"{name}/{s}.jsonl", "alpaca") for s in BEHAVIOR_SPLITS}
    entries[f"{name}_aux"] = make_entry(f"{name}/aux.jsonl", "sharegpt")
    entries[f"{name}_atuning_mix"] = make_entry(f"{name}/atuning_mix.jsonl", "sharegpt")
    return entries


def load_source(args: PrepareArguments) -> tuple[pd.DataFrame, dict]:
    """Events frame (validated, sorted) and the source's stats."""
    if args.synthetic:
        cfg = SimulatorConfig(num_users=args.synthetic_users, num_days=args.synthetic_days, seed=args.seed)
        df = simulate_events(cfg)
        counts = df.groupby("user_id", observed=True).size()
        keep = counts[counts >= args.min_events_per_user].index
        stats = EventStats(source=f"synthetic(users={cfg.num_users}, days={cfg.num_days}, seed={cfg.seed})")
        stats.rows_in, stats.users_in = len(df), len(counts)
        stats.users_skipped_too_few_events = int((counts < args.min_events_per_user).sum())
        df = df[df["user_id"].isin(keep)].reset_index(drop=True)
        stats.events_skipped_too_few_events = stats.rows_in - len(df)
        stats.rows_out = len(df)
        return df, stats.to_dict()
    fmt = args.format
    path = Path(args.events)
    kw = {"min_events_per_user": args.min_events_per_user}
    if fmt == "foursquare":
        from .loaders import load_foursquare_tsmc

        df, stats = load_foursquare_tsmc(path, place=args.foursquare_place, **kw)
    elif fmt == "app_usage":
        from .loaders import load_app_usage_dir

        df, stats = load_app_usage_dir(path, **kw)
    else:
        df, stats = load_events(
            path,
            column_map=args.column_map_dict,
            fmt=None if fmt == "auto" else fmt,
            timestamp_format=args.timestamp_format,
            **kw,
        )
    return df, stats.to_dict()


def _sample_rows(
    enc: EncodedEvents,
    targets: np.ndarray,
    args: PrepareArguments,
    split: str,
    cats,
    rng: np.random.Generator,
    options: PromptOptions,
    system: str,
) -> tuple[list[dict], list[dict]]:
    hist = history_indices(targets, args.history_len)
    prompts, fmts, cands = render_prompts(enc, targets, hist, rng, options)
    records, metas = [], []
    for i, t in enumerate(targets):
        label = enc.behaviors[enc.behavior[t]]
        sid = f"{args.name}-{split}-{i:06d}"
        records.append({"id": sid, "instruction": prompts[i], "input": "", "output": label, "system": system})
        metas.append(
            {
                "id": sid,
                "user_id": enc.users[enc.user[t]],
                "timestamp": str(pd.Timestamp(enc.timestamp[t])),
                "label": label,
                "anchor_tail": cats.anchor_tail[label],
                "head_medium_tail": cats.head_medium_tail[label],
                "format": fmts[i],
                "candidates": cands[i],
            }
        )
    return records, metas


def _token_stats(texts: list[str], tokenizer, n: int, rng: np.random.Generator) -> dict:
    if not texts:
        return {}
    pick = rng.choice(len(texts), size=min(n, len(texts)), replace=False)
    if tokenizer is None:
        lengths = np.array([aux_data.approx_token_count(texts[i]) for i in pick])
        unit = "approx_tokens (no --tokenizer given)"
    else:
        count = aux_data.tokenizer_counter(tokenizer)
        lengths = np.array([count(texts[i]) for i in pick])
        unit = f"tokens ({getattr(tokenizer, 'name_or_path', 'tokenizer')})"
    q = np.percentile(lengths, [50, 90, 99])
    return {
        "unit": unit,
        "measured": len(pick),
        "mean": float(lengths.mean()),
        "p50": float(q[0]),
        "p90": float(q[1]),
        "p99": float(q[2]),
        "max": int(lengths.max()),
    }


def prepare(args: PrepareArguments) -> dict:
    """Run the whole preparation; returns the stats dict (also written to stats.json)."""
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    out_dir = Path(args.dataset_dir)
    entries = dataset_entries(args.name)
    check_registration(out_dir, entries, overwrite=args.overwrite)  # fail before any work or write

    for path in (args.prompt_template_files or "").split(","):
        if path.strip():
            load_prompt_format_file(path.strip(), overwrite=True)
    options = PromptOptions(formats=args.format_list, shuffle_candidates=not args.fixed_candidate_order)
    system = system_prompt()

    df, source_stats = load_source(args)
    timings["load_events_s"] = time.perf_counter() - t0

    t = time.perf_counter()
    enc = encode_events(df)
    targets = window_targets(enc.user, args.history_len)
    if len(targets) == 0:
        raise BehaviorDataError(
            f"{source_stats['source']}: no user has more than {args.history_len} events, so no sample can be "
            "built; lower --history_len or add data."
        )
    user_split = split_users(len(enc.users), args.ratios, seed=args.seed)
    target_split = user_split[enc.user[targets]]
    by_split = {s: targets[target_split == i] for i, s in enumerate(("train", "val", "test"))}
    for s, arr in by_split.items():
        if len(arr) == 0:
            raise BehaviorDataError(
                f"{source_stats['source']}: the {s} split has no samples ({len(enc.users)} users); "
                "add users or change --split_ratios."
            )
    cats = frequency_categories(
        enc.behavior[by_split["train"]],
        enc.behaviors,
        anchor_threshold=args.anchor_threshold,
        head_threshold=args.head_threshold,
        medium_threshold=args.medium_threshold,
    )
    timings["windows_s"] = time.perf_counter() - t

    # Each split gets its own generator, so capping one split never changes another.
    def rng(i: int) -> np.random.Generator:
        return np.random.default_rng([args.seed, i])

    chosen = {
        "train_all": subsample(by_split["train"], args.max_train_samples, rng(1)),
        "val": subsample(by_split["val"], args.max_val_samples, rng(2)),
        "test": subsample(by_split["test"], args.max_test_samples, rng(3)),
    }
    chosen["test_balanced"], balanced_counts = balanced_subset(
        by_split["test"], enc.behavior, len(enc.behaviors), args.balanced_per_class, rng(4)
    )

    t = time.perf_counter()
    rows: dict[str, tuple[list[dict], list[dict]]] = {}
    for i, split in enumerate(("train_all", "val", "test", "test_balanced")):
        rows[split] = _sample_rows(enc, chosen[split], args, split, cats, rng(10 + i), options, system)
    anchor_mask = [m["anchor_tail"] == "anchor" for m in rows["train_all"][1]]
    for split, keep in (("train_anchor", True), ("train_tail", False)):
        recs, metas = rows["train_all"]
        rows[split] = (
            [r for r, a in zip(recs, anchor_mask, strict=True) if a == keep],
            [m for m, a in zip(metas, anchor_mask, strict=True) if a == keep],
        )
    timings["render_prompts_s"] = time.perf_counter() - t

    # Auxiliary conversations and the exact-ratio A-Tuning mix.
    tokenizer = None
    if args.tokenizer:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    count = aux_data.tokenizer_counter(tokenizer) if tokenizer else None
    aux_pool = aux_data.load_conversations(args.aux_file)
    aux_kept, aux_dropped = aux_data.filter_by_tokens(
        aux_pool, args.aux_max_tokens, count or aux_data.approx_token_count
    )
    mix_anchor = rows["train_anchor"][0]
    if args.mix_anchor_samples is not None and args.mix_anchor_samples < len(mix_anchor):
        keep = np.sort(rng(7).choice(len(mix_anchor), size=args.mix_anchor_samples, replace=False))
        mix_anchor = [mix_anchor[i] for i in keep]
    n_anchor = len(mix_anchor)
    n_aux = aux_data.aux_count(n_anchor, args.aux_ratio)
    aux_used, aux_repeats = aux_data.pick_aux(aux_kept, n_aux, rng(5))
    mix = [aux_data.behavior_to_sharegpt(r["system"], r["instruction"], r["output"]) for r in mix_anchor]
    mix += aux_used
    mix = [mix[i] for i in rng(6).permutation(len(mix))]

    t = time.perf_counter()
    base = out_dir / args.name
    for split in ("train_all", "val", "test", "test_balanced"):
        write_features(base / f"{split}.features.npz", enc, chosen[split], args.history_len)
    for split in BEHAVIOR_SPLITS:
        recs, metas = rows[split]
        atomic_write_jsonl(base / f"{split}.jsonl", recs)
        atomic_write_jsonl(base / f"{split}.meta.jsonl", metas)
    atomic_write_jsonl(base / "aux.jsonl", aux_kept)
    atomic_write_jsonl(base / "atuning_mix.jsonl", mix)
    timings["write_s"] = time.perf_counter() - t

    token_lengths = {
        split: _token_stats(
            [r["system"] + "\n" + r["instruction"] for r in rows[split][0]],
            tokenizer,
            args.token_stats_samples,
            rng(20 + i),
        )
        for i, split in enumerate(("train_all", "test_balanced"))
    }

    train_labels = pd.Series(cats.counts)
    anchors = [b for b, c in cats.anchor_tail.items() if c == "anchor"]
    stats = {
        "name": args.name,
        "source": source_stats,
        "arguments": {k: v for k, v in vars(args).items()},
        "behaviors": {
            b: {
                "train_count": cats.counts[b],
                "train_frequency": cats.frequency[b],
                "anchor_tail": cats.anchor_tail[b],
                "head_medium_tail": cats.head_medium_tail[b],
                "test_balanced_count": int(balanced_counts[i]),
            }
            for i, b in enumerate(enc.behaviors)
        },
        "categories": {
            "thresholds": {
                "anchor": args.anchor_threshold,
                "head": args.head_threshold,
                "medium": args.medium_threshold,
            },
            "anchors": anchors,
            "n_anchor": len(anchors),
            "n_tail": len(enc.behaviors) - len(anchors),
            "anchor_share_of_train": float(train_labels[anchors].sum() / max(1, train_labels.sum())),
            "head_medium_tail_counts": pd.Series(cats.head_medium_tail).value_counts().to_dict(),
        },
        "splits": {
            "users": {s: int((user_split == i).sum()) for i, s in enumerate(("train", "val", "test"))},
            "user_overlap": _user_overlap(enc, chosen),
            "windows_available": {s: len(v) for s, v in by_split.items()},
            "samples_written": {s: len(rows[s][0]) for s in BEHAVIOR_SPLITS},
            "test_balanced_per_behavior": {b: int(c) for b, c in zip(enc.behaviors, balanced_counts, strict=True)},
        },
        "baselines": context_baseline(enc, by_split["train"], by_split["test"]),
        "aux": {
            "file": str(args.aux_file or aux_data.default_aux_path().name),
            "loaded": len(aux_pool),
            "dropped_over_token_budget": aux_dropped,
            "kept": len(aux_kept),
            "max_tokens": args.aux_max_tokens,
            "token_counter": "tokenizer" if tokenizer else "approx",
            "ratio": args.aux_ratio,
            "used_in_mix": len(aux_used),
            "pool_repeats": aux_repeats,
            "mix_anchor_samples": n_anchor,
            "mix_size": len(mix),
            "exact_ratio": (len(aux_used) / n_anchor) if n_anchor else 0.0,
        },
        "prompt_lengths": token_lengths,
        "prompt_formats": list(options.formats),
    }
    if args.synthetic:
        all_counts = pd.Series(np.bincount(enc.behavior, minlength=len(enc.behaviors)), index=list(enc.behaviors))
        stats["synthetic"] = {
            "tv_distance_to_paper": total_variation(all_counts.to_dict(), PAPER_BEHAVIOR_PROPORTIONS),
            "tv_distance_train_to_paper": total_variation(cats.counts, PAPER_BEHAVIOR_PROPORTIONS),
            "anchor_share_all_events": float(
                all_counts[[b for b, f in PAPER_BEHAVIOR_PROPORTIONS.items() if f > 0.01]].sum() / all_counts.sum()
            ),
        }
    timings["total_s"] = time.perf_counter() - t0
    stats["timings"] = {k: round(v, 3) for k, v in timings.items()}
    atomic_write_json(base / "stats.json", stats)
    register_datasets(dataset_dir=out_dir, entries=entries, overwrite=args.overwrite)
    return stats


def ensure_prepared(args: PrepareArguments, log=print) -> bool:
    """Prepare unless ``DIR/NAME/stats.json`` already records exactly these arguments.

    Returns True when the existing data was reused.  Used by the pipeline and the benchmark,
    so a shared dataset is never rebuilt (and never silently reused with other arguments).
    """
    stats_path = Path(args.dataset_dir) / args.name / "stats.json"
    if stats_path.exists():
        existing = json.loads(stats_path.read_text()).get("arguments", {})
        if existing == vars(args):
            log(f"[prepare] {stats_path} already has these arguments; not re-preparing")
            return True
        changed = sorted(k for k in set(existing) | set(vars(args)) if existing.get(k) != vars(args).get(k))
        log(f"[prepare] {stats_path.parent} was prepared with other arguments ({', '.join(changed)}); re-preparing")
    prepare(args)
    return False


def write_features(path: Path, enc: EncodedEvents, targets: np.ndarray, history_len: int) -> None:
    """Integer features of the same samples, line-aligned with the JSONL, for non-LLM baselines (SASRec)."""
    hist = history_indices(targets, history_len)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez_compressed(
        tmp,
        hist_behavior=enc.behavior[hist].astype(np.int16),
        hist_place=enc.place[hist].astype(np.int32),
        hist_dow=enc.dow[hist].astype(np.int8),
        hist_hour=enc.hour[hist].astype(np.int8),
        next_dow=enc.dow[targets].astype(np.int8),
        next_hour=enc.hour[targets].astype(np.int8),
        next_place=enc.place[targets].astype(np.int32),
        label=enc.behavior[targets].astype(np.int16),
        behaviors=np.array(enc.behaviors),
        places=np.array(enc.places),
    )
    tmp.replace(path)


def _user_overlap(enc: EncodedEvents, chosen: dict[str, np.ndarray]) -> dict[str, int]:
    users = {s: set(np.unique(enc.user[t]).tolist()) for s, t in chosen.items()}
    test_users = users["test"] | users["test_balanced"]
    return {
        "train_val": len(users["train_all"] & users["val"]),
        "train_test": len(users["train_all"] & test_users),
        "val_test": len(users["val"] & test_users),
    }
