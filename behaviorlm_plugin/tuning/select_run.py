"""Selection's I/O edge: score a pool (``NAME_train_all``, or ``NAME_train_pool``) with the stage-1 model, pick,
write, register."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from behaviorlm_plugin.data.dataset import PreparedDataset
from behaviorlm_plugin.data.registry import make_entry, register_datasets
from behaviorlm_plugin.extras.constants import (
    ALL_SPLITS,
    btuning_dataset_name,
    check_dataset_name,
    dataset_file_stem,
)
from behaviorlm_plugin.extras.fileio import atomic_write_json, atomic_write_jsonl
from behaviorlm_plugin.extras.pause import pause_point
from behaviorlm_plugin.hparams.selection_args import SelectionArguments
from behaviorlm_plugin.model.paths import check_adapter_path, check_model_path
from behaviorlm_plugin.tuning.selection import Scored, select
from behaviorlm_plugin.tuning.strategies import check_strategy_name, get_strategy


def _score_fn(model, adapter, template, args: SelectionArguments, device: str, recs, metas, labels):
    from behaviorlm_plugin.model.scoring import CandidateScorer  # deferred: torch (uniform scores nothing)

    scorer = CandidateScorer.from_pretrained(
        model, adapter, template=template, batch_size=args.batch_size, device=device, show_progress=False
    )

    def score(idxs: list[int]) -> list[Scored]:
        preds = scorer.predict(
            [(recs[i].get("system"), recs[i]["instruction"]) for i in idxs],
            [metas[i]["candidates"] for i in idxs],
            labels=[labels[i] for i in idxs],
        )
        return [Scored(predicted=p.label, true_prob=float(p.true_prob or 0.0)) for p in preds]

    return score


def _check_output(name: str, output_name: str | None, out_path: str | None) -> None:
    """The B-Tuning set never lands on a prepared split: its name must be new to the dataset."""
    if out_path is not None or output_name is None:
        return
    check_dataset_name(output_name, "--output-name")
    stem = dataset_file_stem(name, output_name)
    if stem in ALL_SPLITS or stem == "stats":
        raise ValueError(
            f"--output-name {output_name}: would overwrite the prepared {stem!r} split of {name!r}; "
            f"choose another name (default {btuning_dataset_name(name)})"
        )


def run_selection(
    *,
    model: str,
    dataset_dir: str,
    name: str,
    args: SelectionArguments,
    adapter: str | None = None,
    template: str | None = None,
    output_name: str | None = None,
    out_json: str | None = None,
    out_path: str | None = None,
    device: str = "auto",
) -> dict:
    """Pick ``args.k`` hard samples per behavior and write them as a B-Tuning dataset.

    Writes ``DIR/NAME/<output>.jsonl`` (+ ``.meta.jsonl``), registers it as ``output_name``
    (default ``NAME_btuning``) in ``DIR/dataset_info.json`` and writes ``selection.json``
    (every pick with its id, label, predicted label, true-label probability and tier).
    With ``out_path`` the picks go to that file (+ ``.meta.jsonl``) and nothing is registered:
    the benchmark keeps its datasets in its own cache.
    """
    from tqdm.auto import tqdm

    check_strategy_name(args.strategy, source="selection.strategy")  # before the model is even looked at
    check_model_path(model)  # even for a strategy that scores nothing: a typo is an error, not a silent pass
    check_adapter_path(adapter)
    _check_output(name, output_name, out_path)
    data = PreparedDataset(dataset_dir, name)
    anchor_tail = data.stats.anchor_tail
    recs, metas = data.load(args.pool)
    labels = [m["label"] for m in metas]
    scores = get_strategy(args.strategy).scores
    score = _score_fn(model, adapter, template, args, device, recs, metas, labels) if scores else None
    limit = args.max_scored_per_class or 10**12
    counts = {b: labels.count(b) for b in set(labels)}
    total = sum(min(c, limit) for c in counts.values()) if scores else 0
    with tqdm(total=total, desc="selection: scoring", unit="sample") as bar:
        picks, report = select(labels, anchor_tail, args, score, progress=bar.update)
    pause_point("selection.scored")  # tests: a kill here has scored the pool and written nothing
    order = np.random.default_rng(args.seed + 1).permutation(len(picks))  # mix behaviors within the file
    picks = [picks[i] for i in order]
    output_name = output_name or btuning_dataset_name(name)
    file_stem = dataset_file_stem(name, output_name)
    rel = out_path or f"{name}/{file_stem}.jsonl"
    data_path = Path(out_path) if out_path else Path(dataset_dir) / rel
    atomic_write_jsonl(data_path, [recs[p["pool_index"]] for p in picks])
    atomic_write_jsonl(data_path.with_suffix(".meta.jsonl"), [metas[p["pool_index"]] for p in picks])
    if out_path is None:
        register_datasets(dataset_dir=dataset_dir, entries={output_name: make_entry(rel, "alpaca")})
    for p in picks:
        p["id"] = recs[p["pool_index"]]["id"]
    report.update(
        model=model,
        adapter=adapter,
        dataset=output_name,
        file=rel,
        arguments=asdict(args),
        picks=[{k: p[k] for k in ("id", "label", "predicted", "true_prob", "tier")} for p in picks],
    )
    atomic_write_json(out_json or data_path.with_name(f"{file_stem}.selection.json"), report)
    return report
