"""DuckDB vs Polars on the part of `prepare` that grows with the log: read, de-duplicate, order per user.

Writes a Parquet log of the paper's shape (benchmarks/bench_prepare.py's generator), then runs each engine
in a fresh process: read the four columns with their row number, drop exact duplicates (first kept), and
number every event within its user by (time, row), the positions windowing needs. Records wall time, CPU
time and peak memory in ``benchmarks/results/engines.json`` (atomic). Polars is optional (not a
dependency of the package): ``pip install polars`` to include it.

Run: nice -n 15 .venv/bin/python benchmarks/bench_engines.py [--events 1e7] [--memory-limit 2GB]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from behaviorlm_plugin.extras.fileio import atomic_write_json

DUCKDB = """
import duckdb, sys
con = duckdb.connect(sys.argv[2] + "/db.duckdb")
con.execute(f"SET memory_limit = '{sys.argv[3]}'; SET temp_directory = '{sys.argv[2]}/spill'")
con.execute("SET enable_progress_bar = false")
con.execute(f'''CREATE TABLE ev AS WITH raw AS (SELECT user_id, timestamp AS ts, place, behavior, file_row_number AS row
  FROM read_parquet('{sys.argv[1]}', file_row_number = true)),
  d AS (SELECT user_id, ts, place, behavior, min(row) AS row FROM raw GROUP BY ALL)
  SELECT user_id, ts, place, behavior, row_number() OVER (PARTITION BY user_id ORDER BY ts, row) - 1 AS pos FROM d''')
print(con.execute("SELECT count(*), count(DISTINCT user_id), max(pos) FROM ev").fetchall()[0])
"""

POLARS = """
import polars as pl, sys
lf = pl.scan_parquet(sys.argv[1]).with_row_index("row")
lf = lf.group_by(["user_id", "timestamp", "place", "behavior"]).agg(pl.col("row").min())
lf = lf.sort(["user_id", "timestamp", "row"]).with_columns(pos=pl.int_range(pl.len()).over("user_id"))
df = lf.collect(engine="streaming")
print((len(df), df["user_id"].n_unique(), df["pos"].max()))
"""


def run(name: str, code: str, log: Path, folder: Path, memory_limit: str) -> dict:
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, str(log), str(folder), memory_limit], stdout=subprocess.PIPE)
    out = proc.stdout.read().decode().strip()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        return {"engine": name, "error": f"exit status {status}"}
    return {
        "engine": name,
        "wall_s": round(time.perf_counter() - t0, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_gib": round(usage.ru_maxrss / 2**20, 3),
        "result": out,
        "load_avg_before": round(load, 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", default="1e7")
    p.add_argument("--memory-limit", default="2GB", help="DuckDB's memory_limit (Polars has no such setting)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "engines.json"))
    a = p.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_prepare import write_log

    n = int(float(a.events))
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-engines-") as tmp:
        log = Path(tmp) / "events.parquet"
        write_log(log, n)
        engines = {"duckdb": DUCKDB}
        try:
            import polars  # noqa: F401

            engines["polars"] = POLARS
        except ImportError:
            print("[bench] polars is not installed; measuring DuckDB only")
        for name, code in engines.items():
            runs.append(run(name, code, log, Path(tmp), a.memory_limit))
            print(json.dumps(runs[-1]), flush=True)
    atomic_write_json(
        a.out,
        {
            "benchmark": "read + de-duplicate + per-user order of a Parquet log, each engine in a fresh process",
            "events": n,
            "runs": runs,
            "contention": "shared 2-core machine: wall time includes others' load; cpu_s does not",
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
            "command": f"nice -n 15 python benchmarks/bench_engines.py --events {a.events}",
        },
    )


if __name__ == "__main__":
    main()
