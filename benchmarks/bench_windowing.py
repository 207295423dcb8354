"""Windowing throughput on >= 5M synthetic events; writes benchmarks/results/windowing.json.

Run: .venv/bin/python benchmarks/bench_windowing.py [--users 10000 --days 60 --repeats 5]
Target (issue 2): >= 1M events/s on the 2-core CPU machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from behaviorlm_plugin.data.samples import encode_events, history_indices, window_targets
from behaviorlm_plugin.data.simulator import SimulatorConfig, simulate_events
from behaviorlm_plugin.extras.fileio import atomic_write_json


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--users", type=int, default=10000)
    p.add_argument("--days", type=int, default=60)
    p.add_argument("--history-len", type=int, default=20)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "windowing.json"))
    a = p.parse_args()

    t = time.perf_counter()
    df = simulate_events(SimulatorConfig(num_users=a.users, num_days=a.days, seed=0))
    sim_s = time.perf_counter() - t
    t = time.perf_counter()
    enc = encode_events(df)
    encode_s = time.perf_counter() - t
    n = len(enc)

    runs = []
    for _ in range(a.repeats):
        t = time.perf_counter()
        targets = window_targets(enc.user, a.history_len)
        hist = history_indices(targets, a.history_len)
        runs.append(time.perf_counter() - t)
        assert hist.shape == (len(targets), a.history_len)
    best = min(runs)
    result = {
        "benchmark": "windowing (window_targets + history_indices)",
        "events": n,
        "samples": len(targets),
        "history_len": a.history_len,
        "seconds_best": best,
        "seconds_all": runs,
        "events_per_second": n / best,
        "target_events_per_second": 1_000_000,
        "meets_target": n / best >= 1_000_000,
        "encode_events_seconds": encode_s,
        "encode_plus_window_events_per_second": n / (encode_s + best),
        "simulate_seconds": sim_s,
        "simulate_events_per_second": n / sim_s,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
        "command": "python benchmarks/bench_windowing.py " + f"--users {a.users} --days {a.days}",
    }
    atomic_write_json(a.out, result)
    keys = ("events", "samples", "seconds_best", "events_per_second", "encode_plus_window_events_per_second")
    print(json.dumps({k: result[k] for k in (*keys, "simulate_seconds")}, indent=2))


if __name__ == "__main__":
    main()
