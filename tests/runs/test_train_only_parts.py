"""Parts that only train, a scoring part that scores a seed's models in one pass, one training set for every seed
(``data_seed``), and learning-rate trials scored on the search's split only: the cpu-main layout, on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

from small_configs import small_synthetic_prepare

from behaviorlm_plugin.runs.bench.runner import load_suite, run_parts

VARIANTS = [
    {"name": "zero-shot", "kind": "zero_shot", "group": "baseline"},
    {"name": "BehaviorLM", "kind": "behaviorlm", "group": "ours"},
    {"name": "full-ft", "kind": "full_ft", "group": "baseline", "train_samples": "matched"},
]
PARTS = [
    {"name": "search-a", "lr_search": ["a_tuning"]},
    {"name": "search-ft", "lr_search": ["full_ft"]},
    {"name": "s1-train", "variants": ["BehaviorLM", "full-ft"], "seeds": [1], "evaluate": False},
    {"name": "s1", "variants": ["zero-shot", "BehaviorLM", "full-ft"], "seeds": [1]},
]


def _entries(cache: Path, kind: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((cache / kind).glob("*/step.json"))]


def test_train_only_parts_then_one_scoring_pass_on_one_training_set(tmp_path, tiny_model, small_data_dir):
    from test_bench import write_suite

    path = write_suite(
        tmp_path, tiny_model, small_data_dir, variants=VARIANTS, seeds=[0, 1], data_seed=0, parts=PARTS,
        sweeps={}, sasrec={"enabled": False}, prepare=small_synthetic_prepare(small_data_dir), lora_top_layers=1,
        lr_search={"values": [1e-4, 1e-3], "targets": ["a_tuning", "full_ft"], "split": "val"},
    )  # fmt: skip
    suite = load_suite(path)
    cache = Path(suite.cache_dir)
    run_parts(suite, ["search-a", "search-ft"], log=lambda _: None)
    trial_evals = _entries(cache, "eval")
    assert trial_evals and all(set(e["spec"]["caps"]) == {"val"} for e in trial_evals)  # the search's split only

    run_parts(suite, ["s1-train"], log=lambda _: None)
    part = json.loads((Path(suite.out_dir) / "parts" / "s1-train.json").read_text())
    assert part["complete"] is True and part["variants"] == {} and len(part["trained_models"]) == 2
    assert len(_entries(cache, "eval")) == len(trial_evals)  # it scored nothing

    logs: list[str] = []
    merged = run_parts(suite, ["s1"], log=logs.append)
    assert not [line for line in logs if line.startswith("[bench] train ") and line.endswith(": running")]
    seed1 = [e for e in _entries(cache, "eval") if set(e["spec"]["caps"]) != {"val"}]
    assert len(seed1) == 3 and {e.get("built_with") for e in seed1} == {3}  # zero-shot and two models, one pass
    # data_seed: seed 0's search and seed 1's rows trained on the same mix and the same natural subset.
    assert len(_entries(cache, "mix")) == 1 and len(_entries(cache, "subset")) == 1
    trains = _entries(cache, "train")
    assert len({json.dumps(t["spec"]["recipe"].get("seed")) for t in trains}) == 2  # but two training seeds
    assert merged["complete"] is True and set(merged["variants"]["BehaviorLM"]["per_seed"]) == {"1"}
    assert (
        merged["variants"]["full-ft"]["per_seed"]["1"]["train_samples"]
        == merged["variants"]["BehaviorLM"]["per_seed"]["1"]["train_samples"]
    )
