"""Nothing lost: all-or-nothing `prepare --overwrite` under real `kill -9`, and a locked registry under real races.

Kill points are deterministic: the child stops at a named step (``BEHAVIORLM_TEST_PAUSE_AT``), says so
in a file, and is then killed, so no test depends on timing luck.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from behaviorlm_plugin.data.prepare import prepare
from behaviorlm_plugin.data.registry import make_entry, read_dataset_info, register_datasets
from behaviorlm_plugin.hparams.data_args import PrepareArguments

SPLITS = ("train_all", "train_anchor", "train_tail", "val", "test", "test_balanced")
BEHAVIORS = ["Gaming", "Ordering takeout", "Hailing a taxi", "Reading", "Shopping"]


def write_events(path: Path, seed: int, users: int = 12, per_user: int = 30) -> Path:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        t = pd.Timestamp("2024-03-01 07:00") + pd.Timedelta(minutes=int(rng.integers(0, 600)))
        for _ in range(per_user):
            t += pd.Timedelta(minutes=int(rng.integers(20, 240)))
            rows.append((f"u{u}", t.isoformat(), rng.choice(["home", "work", "gym"]), rng.choice(BEHAVIORS)))
    pd.DataFrame(rows, columns=["user_id", "timestamp", "place", "behavior"]).to_csv(path, index=False)
    return path


def args_for(events: Path, dataset_dir: Path, **kw) -> PrepareArguments:
    return PrepareArguments(
        events=str(events), dataset_dir=str(dataset_dir), name="t", max_train_samples=80, balanced_per_class=3, **kw
    )


def cli_args(a: PrepareArguments) -> list[str]:
    out = ["--events", a.events, "--dataset-dir", a.dataset_dir, "--name", a.name]
    out += ["--max-train-samples", str(a.max_train_samples), "--balanced-per-class", str(a.balanced_per_class)]
    return out + (["--overwrite"] if a.overwrite else [])


def snapshot(base: Path) -> dict[str, bytes]:
    return {s: (base / f"{s}.jsonl").read_bytes() for s in SPLITS} | {"stats": _stats_args(base)}


def _stats_args(base: Path) -> bytes:
    arguments = json.loads((base / "stats.json").read_text())["arguments"]
    return json.dumps({k: v for k, v in arguments.items() if k not in ("dataset_dir", "overwrite")}).encode()


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tx")
    old, new = write_events(tmp / "old.csv", 1), write_events(tmp / "new.csv", 2)
    prepare(args_for(old, tmp / "ref_old"))
    prepare(args_for(new, tmp / "ref_new"))
    return old, new, snapshot(tmp / "ref_old" / "t"), snapshot(tmp / "ref_new" / "t")


def run_until(point: str, a: PrepareArguments, tmp: Path) -> None:
    """Start `prepare` in a child, wait until it reaches ``point``, then SIGKILL it."""
    flag = tmp / f"paused-{point}"
    env = dict(os.environ, BEHAVIORLM_TEST_PAUSE_AT=point, BEHAVIORLM_TEST_PAUSE_FILE=str(flag))
    cmd = [sys.executable, "-m", "behaviorlm_plugin.cli", "prepare", *cli_args(a)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 120
    while not flag.exists():
        if proc.poll() is not None:
            pytest.fail(f"prepare exited before {point}: {proc.stderr.read().decode()[-2000:]}")
        if time.time() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"prepare never reached {point}")
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def assert_consistent(dataset_dir: Path, old: dict, new: dict) -> str:
    """Every registered entry exists, and the dataset is wholly the old one or wholly the new one."""
    info = read_dataset_info(dataset_dir)
    for name, entry in info.items():
        assert (dataset_dir / entry["file_name"]).exists(), f"{name} points at a missing file"
    assert {f"t_{s}" for s in SPLITS} <= set(info)
    now = snapshot(dataset_dir / "t")
    side = "old" if now == old else "new" if now == new else None
    assert side is not None, "a mix of the old and the new dataset"
    return side


@pytest.mark.parametrize(
    ("point", "expected"),
    [("writing", "old"), ("staged", "old"), ("unregistered", "old"), ("versioned", "old"), ("committed", "new")],
)
def test_kill_during_overwrite_leaves_old_or_new_never_a_mix(sources, tmp_path, point, expected):
    old_events, new_events, old, new = sources
    d = tmp_path / "data"
    prepare(args_for(old_events, d))
    (d / "t" / "btuning.jsonl").write_text((d / "t" / "train_all.jsonl").read_text())
    register_datasets(dataset_dir=d, entries={"t_btuning": make_entry("t/btuning.jsonl", "alpaca")})
    run_until(point, args_for(new_events, d, overwrite=True), tmp_path)
    assert assert_consistent(d, old, new) == expected
    if expected == "new":  # the B-Tuning set built from the old data went with it
        assert "t_btuning" not in read_dataset_info(d)
    # The next run recovers: it completes, and nothing of the killed run is left behind.
    prepare(args_for(new_events, d, overwrite=True))
    assert assert_consistent(d, old, new) == "new"
    assert sorted(p.name for p in d.iterdir() if p.name.startswith(".t.") and not p.name.endswith(".lock")) == [
        os.readlink(d / "t")
    ]


def test_kill_while_adopting_a_folder_from_before_versioning(sources, tmp_path):
    old_events, new_events, old, new = sources
    d = tmp_path / "data"
    prepare(args_for(old_events, d))
    real = d / "t"
    target = d / os.readlink(real)
    real.unlink()
    target.rename(real)  # a dataset prepared before versioned folders: a plain folder
    run_until("adopted", args_for(new_events, d, overwrite=True), tmp_path)
    assert not (d / "t").exists()  # the one instant the name is missing ...
    prepare(args_for(new_events, d, overwrite=True))  # ... and the next run relinks and completes
    assert assert_consistent(d, old, new) == "new"


def _register_many(dataset_dir: str, worker: int, n: int) -> None:
    data = Path(dataset_dir)
    for i in range(n):
        (data / f"w{worker}_{i}.jsonl").write_text("{}\n")
        register_datasets(dataset_dir=data, entries={f"w{worker}_{i}": make_entry(f"w{worker}_{i}.jsonl", "alpaca")})


@pytest.mark.parametrize("attempt", [0, 1])
def test_concurrent_registrations_lose_nothing(tmp_path, attempt):
    (tmp_path / "dataset_info.json").write_text(json.dumps({"theirs": {"file_name": "x.json"}}))
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_register_many, args=(str(tmp_path), w, 20)) for w in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    info = read_dataset_info(tmp_path)
    assert set(info) == {"theirs"} | {f"w{w}_{i}" for w in range(6) for i in range(20)}


def test_concurrent_prepares_of_two_names_both_register(sources, tmp_path):
    old_events, new_events, _, _ = sources
    d = tmp_path / "data"
    cmds = []
    for name, events in (("a", old_events), ("b", new_events)):
        a = args_for(events, d)
        argv = cli_args(a)
        argv[argv.index("--name") + 1] = name
        cmds.append([sys.executable, "-m", "behaviorlm_plugin.cli", "prepare", *argv])
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for c in cmds]
    assert all(p.wait(180) == 0 for p in procs), [p.stderr.read().decode()[-500:] for p in procs]
    info = read_dataset_info(d)
    assert {f"{n}_{s}" for n in "ab" for s in SPLITS} <= set(info)


def test_concurrent_prepares_of_one_name_one_wins_one_refuses(sources, tmp_path):
    _, _, old, new = sources
    d = tmp_path / "data"
    cmds = [[sys.executable, "-m", "behaviorlm_plugin.cli", "prepare", *cli_args(args_for(e, d))] for e in sources[:2]]
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for c in cmds]
    codes = sorted(p.wait(180) for p in procs)
    errors = b"".join(p.stderr.read() for p in procs).decode()
    assert codes == [0, 1] and "already prepared and registered" in errors
    assert_consistent(d, old, new)
