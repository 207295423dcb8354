"""The past-capacity record of benchmarks/bench_serve.py: how outcomes are tallied (the run itself needs a
model and minutes; its committed record is checked for the fields the docs quote)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_serve", ROOT / "benchmarks/bench_serve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_outcome_but_200_503_504_counts_as_an_error():
    results = [(200, 2.0, None), (200, 4.0, None), (503, 0.1, "1"), (504, 60.0, None), (500, 1.0, None)]
    results.append(("ReadTimeout", 300.0, None))
    t = _bench().tally(results, unfinished=1)
    assert t["counts"] == {"200": 2, "503": 1, "504": 1}
    assert t["errors"] == {"count": 3, "unfinished": 1, "500": 1, "ReadTimeout": 1}
    assert t["retry_after_on_every_503"] is True
    assert t["latency_ms"]["200"] == {"n": 2, "p50": 3000.0, "p99": 3980.0}
    assert t["latency_ms"]["all"]["n"] == 6


def test_the_committed_record_is_past_capacity_and_the_server_survived_it():
    rec = json.loads((ROOT / "benchmarks/results/serve.json").read_text())["past_capacity"]
    assert rec["requests"] == rec["times_capacity"] * rec["queue_capacity_samples"] and rec["times_capacity"] >= 4
    assert sum(rec["counts"].values()) + rec["errors"]["count"] == rec["requests"]
    assert rec["counts"]["503"] > 0 and rec["errors"]["count"] == 0
    assert rec["after"]["process_alive"] and rec["after"]["probe_status"] == 200
    assert rec["after"]["same_ranking_as_before"] and rec["config"]["command"].startswith("nice")
