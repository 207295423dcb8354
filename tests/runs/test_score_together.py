"""A bench run scores its trained models together, in passes over the layers their adapters leave alone
(``score_together``, ``model/twin.py``): the same evaluation entries, keys and scores as scoring each alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from small_configs import small_synthetic_prepare

from behaviorlm_plugin.extras.fileio import read_jsonl
from behaviorlm_plugin.runs.bench.runner import BenchRunner, load_suite

VARIANTS = [
    {"name": "zero-shot", "kind": "zero_shot", "group": "baseline"},
    {"name": "BehaviorLM", "kind": "behaviorlm", "group": "ours"},
    {"name": "full-ft", "kind": "full_ft", "group": "baseline", "train_samples": "matched"},
]


def _eval_entries(cache: Path) -> dict[str, dict]:
    return {d.name: json.loads((d / "step.json").read_text()) for d in (cache / "eval").iterdir() if d.is_dir()}


def _probs(cache: Path, key: str) -> dict[str, dict[str, float]]:
    """Each evaluated sample's candidate probabilities, by split and id, of one eval entry."""
    out = {}
    for preds in sorted((cache / "eval" / key).glob("*/preds.jsonl")):
        out[preds.parent.name] = {r["id"]: {c["behavior"]: c["prob"] for c in r["ranked"]} for r in read_jsonl(preds)}
    return out


def test_a_run_scores_its_models_in_one_pass_with_the_scores_each_gets_alone(tmp_path, tiny_model, small_data_dir):
    from test_bench import write_suite

    path = write_suite(
        tmp_path, tiny_model, small_data_dir, variants=VARIANTS, seeds=[0], sweeps={}, sasrec={"enabled": False},
        prepare=small_synthetic_prepare(small_data_dir), lora_top_layers=1,  # layer 0 is shared by every model
    )  # fmt: skip
    together = BenchRunner(load_suite(path), log=lambda _: None).run()
    cache = Path(load_suite(path).cache_dir)
    entries = _eval_entries(cache)
    # zero-shot, BehaviorLM's model and full-ft's model: three entries, built by one pass.
    assert len(entries) == 3 and {e["built_with"] for e in entries.values()} == {3}
    first = {key: _probs(cache, key) for key in entries}

    shutil.rmtree(cache / "eval")  # the same trained models, now each scored alone
    alone = BenchRunner(load_suite(path, ["score_together=1"]), log=lambda _: None).run()
    again = _eval_entries(cache)
    assert set(again) == set(entries) and not any("built_with" in e for e in again.values())
    for key in entries:
        got, want = first[key], _probs(cache, key)
        assert got.keys() == want.keys() and got
        for split in want:
            assert got[split].keys() == want[split].keys()
            for sid, probs in want[split].items():
                cands = sorted(probs)
                np.testing.assert_allclose([got[split][sid][c] for c in cands], [probs[c] for c in cands], atol=1e-4)
    for name in ("zero-shot", "BehaviorLM", "full-ft"):
        a, b = (r["variants"][name]["per_seed"]["0"] for r in (together, alone))
        assert a["predictions"] == b["predictions"] and a["train_samples"] == b["train_samples"]
