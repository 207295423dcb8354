"""`prepare` at the paper's scale: 1M, 10M and 50M-event Parquet logs, each prepared in a fresh process.

Writes logs with the paper's shape (24,133 users, 37 behaviors, 60 days; long-tailed behaviors) to a
temporary folder, runs ``behaviorlm prepare --events LOG --max-train-samples 200000`` on each in its own
process, and records wall time, events/s, peak memory and CPU time in ``benchmarks/results/prepare_scale.json``
(atomic). Peak memory is measured twice: the prepare process's max RSS, and the peak over prepare and the
process it forks to write files, sampled every 0.1 s (``TreeMemory``: RSS while prepare is alone, summed PSS
while the two run, so a page they share counts once): the figure the 4 GiB target is checked against.
The machine is shared: the load average before and after each run is recorded too, and CPU time (the forked
process's included) is the figure that contention does not inflate.

Run: .venv/bin/python benchmarks/bench_prepare.py [--sizes 1e6,1e7,5e7] [--memory-limit 2GB] [--logs DIR]
(``--logs DIR`` keeps the generated logs there and reuses them on the next run: a 50M log takes minutes to write.)
Target (issue 15): 50M events in <= 60 s wall and <= 4 GiB peak, peak flat from 10M to 50M.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from behaviorlm_plugin.extras.fileio import atomic_write_json

USERS, BEHAVIORS, DAYS = 24_133, 37, 60
PLACES = ("home", "workplace", "shop", "gym", "restaurant", "transit", "park", "school", "cafe", "hospital")


def write_log(path: Path, n_events: int, seed: int = 0, chunk: int = 2_000_000) -> None:
    """A Parquet log of ``n_events`` (row groups of 1M), users contiguous, times random within 60 days."""
    rng = np.random.default_rng(seed)
    per_user = rng.multinomial(n_events, np.full(USERS, 1 / USERS))
    p = 1 / np.arange(1, BEHAVIORS + 1) ** 1.3
    p /= p.sum()
    user_labels = pa.array([f"u{i:06d}" for i in range(USERS)])
    behavior_labels = pa.array([f"behavior {i:02d}" for i in range(BEHAVIORS)])
    place_labels = pa.array(PLACES)
    start = np.datetime64("2024-03-01T00:00:00", "s")
    writer, u0 = None, 0
    ends = np.cumsum(per_user)
    while u0 < USERS:
        u1 = int(min(USERS, np.searchsorted(ends, ends[u0] + chunk) + 1))
        counts = per_user[u0:u1]
        n = int(counts.sum())
        table = pa.table(
            {
                "user_id": pa.DictionaryArray.from_arrays(
                    np.repeat(np.arange(u0, u1, dtype=np.int32), counts), user_labels
                ),
                "timestamp": pa.array(start + rng.integers(0, DAYS * 86400, n).astype("timedelta64[s]")),
                "place": pa.DictionaryArray.from_arrays(rng.integers(0, len(PLACES), n).astype(np.int32), place_labels),
                "behavior": pa.DictionaryArray.from_arrays(
                    rng.choice(BEHAVIORS, n, p=p).astype(np.int32), behavior_labels
                ),
            }
        )
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=1_000_000)
        u0 = u1
    writer.close()


def _pss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            return next((int(line.split()[1]) * 1024 for line in fh if line.startswith("Pss:")), 0)
    except OSError:  # gone, or not Linux
        return 0


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                out += [int(x) for x in fh.read().split()]
    except OSError:
        pass
    return out


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return next((int(line.split()[1]) * 1024 for line in fh if line.startswith("VmRSS:")), 0)
    except OSError:
        return 0


class TreeMemory:
    """Peak memory of a process and its children, sampled in a thread (Linux; 0 elsewhere): its RSS while it is
    alone, the PSS summed over it and its children while it has some (a page they share counted once).  PSS only
    then, because reading ``smaps_rollup`` walks every page table: a cost the cheap RSS does not have."""

    def __init__(self, pid: int, every_s: float | None = 0.1) -> None:
        """``every_s=None``: no thread, the caller takes each reading with :meth:`sample`."""
        self.pid, self.every_s, self.peak = pid, every_s, 0
        self._stop = threading.Event()
        self._thread = None if every_s is None else threading.Thread(target=self._run, daemon=True)
        if self._thread is not None:
            self._thread.start()

    def sample(self) -> int:
        """One reading now (bytes); the peak takes it in."""
        kids = _children(self.pid)
        now = sum(_pss_bytes(p) for p in [self.pid, *kids]) if kids else _rss_bytes(self.pid)
        self.peak = max(self.peak, now)
        return now

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every_s)

    def stop(self) -> int:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self.peak


def run_prepare(log: Path, out: Path, memory_limit: str, train: int) -> dict:
    """One prepare in a fresh process; its own wall time, max RSS and CPU time (``os.wait4``)."""
    cmd = [
        sys.executable, "-m", "behaviorlm_plugin.cli", "prepare", "--events", str(log), "--dataset-dir", str(out),
        "--name", "scale", "--max-train-samples", str(train), "--engine.memory_limit", memory_limit, "--overwrite",
    ]  # fmt: skip
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    memory = TreeMemory(proc.pid)
    output = proc.stdout.read()
    tree_peak = memory.stop()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"prepare failed on {log}:\n{output}")
    stats = json.loads((out / "scale" / "stats.json").read_text())
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_gib": round(usage.ru_maxrss / 2**20, 3),
        "peak_tree_pss_gib": round(tree_peak / 2**30, 3),
        "load_avg_before": round(load_before, 2),
        "load_avg_after": round(os.getloadavg()[0], 2),
        "train_samples": stats["splits"]["samples_written"]["train_all"],
        "prepare_timings": stats["timings"],
        "progress_lines": [line for line in output.splitlines() if line.startswith("[prepare]")],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1e6,1e7,5e7", help="event counts, comma-separated")
    p.add_argument("--memory-limit", default="2GB", help="engine.memory_limit for prepare")
    p.add_argument("--train-samples", type=int, default=200_000)
    p.add_argument("--tmp", default=None, help="folder for the logs (default: system temp)")
    p.add_argument("--logs", default=None, help="keep the logs in this folder and reuse those already there")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "prepare_scale.json"))
    a = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-prepare-", dir=a.tmp) as tmp:
        for size in (int(float(s)) for s in a.sizes.split(",")):
            log = Path(a.logs or tmp) / f"events_{size}.parquet"
            if not (a.logs and log.exists()):
                t = time.perf_counter()
                log.parent.mkdir(parents=True, exist_ok=True)
                write_log(log.with_suffix(".part"), size)
                log.with_suffix(".part").replace(log)
                mib = log.stat().st_size / 2**20
                print(f"[bench] wrote {size:,} events ({mib:.0f} MiB) in {time.perf_counter() - t:.0f}s", flush=True)
            result = run_prepare(log, Path(tmp) / "data", a.memory_limit, a.train_samples)
            result = {"events": size, "events_per_s": round(size / result["wall_s"]), **result}
            rows.append(result)
            print(
                f"[bench] {size:>11,} events  {result['wall_s']:7.1f} s wall  {result['cpu_s']:7.1f} s cpu  "
                f"{result['events_per_s']:>10,} ev/s  peak {result['peak_tree_pss_gib']:.2f} GiB (all processes)  "
                f"(load {result['load_avg_before']} -> {result['load_avg_after']})",
                flush=True,
            )
            if not a.logs:
                log.unlink()
    atomic_write_json(
        a.out,
        {
            "benchmark": "behaviorlm prepare on Parquet logs of the paper's shape, each in a fresh process",
            "shape": {"users": USERS, "behaviors": BEHAVIORS, "days": DAYS, "train_samples": a.train_samples},
            "engine_memory_limit": a.memory_limit,
            "targets": {"events": 50_000_000, "wall_s": 60, "peak_tree_pss_gib": 4},
            "runs": rows,
            "contention": "shared 2-core machine: wall time includes others' load (load_avg_*); cpu_s does not",
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
            "command": f"python benchmarks/bench_prepare.py --sizes {a.sizes} --memory-limit {a.memory_limit}"
            + (f" --logs {a.logs}" if a.logs else "")
            + (f" (nice {os.nice(0)})" if os.nice(0) else ""),
        },
    )


if __name__ == "__main__":
    main()
