"""The step cache shared by processes: one builds a step, the other waits and reads it; nothing is cleared under
a writer. Deterministic: the first process holds its build open until the test says go (files, no timers)."""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from pathlib import Path

import pytest

from behaviorlm_plugin.runs.bench.cache import StepCache

SPEC = {"data": "fp", "n": 3}


def _wait_for(path: Path, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout  # a guard against a hang, not a measurement
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"never saw {what} ({path})")
        time.sleep(0.01)


def _worker(root: str, signals: str, name: str, hold: bool) -> None:
    sig = Path(signals)
    logs: list[str] = []

    def build(out: Path) -> dict:
        (sig / f"built-by-{name}").write_text("")
        (out / "part.txt").write_text("first half\n")
        if hold:  # mid-write: the other process asks for the same step now
            (sig / "writing").write_text("")
            _wait_for(sig / "go", "the go signal")
        (out / "part.txt").write_text("first half\nsecond half\n")
        return {"n": 3, "by": name}

    step = StepCache(root, logs.append).run("subset", SPEC, build, "(test)")
    (sig / f"done-{name}.json").write_text(
        json.dumps({"key": step.key, "cached": step.cached, "info": step.info, "logs": logs})
    )


def test_two_processes_on_one_key_both_finish_and_build_once(tmp_path):
    ctx = mp.get_context("fork")
    root, sig = tmp_path / "cache", tmp_path / "sig"
    sig.mkdir()
    first = ctx.Process(target=_worker, args=(str(root), str(sig), "a", True))
    first.start()
    _wait_for(sig / "writing", "the first process mid-write")
    second = ctx.Process(target=_worker, args=(str(root), str(sig), "b", False))
    second.start()
    # The second one must wait on the key's lock: it says so, and has neither built nor cleared anything.
    _wait_for_log(second, sig)
    assert not (sig / "built-by-b").exists()
    partial = next((root / "subset").glob("*.partial"))
    assert (partial / "part.txt").read_text() == "first half\n"  # the writer's entry is untouched
    (sig / "go").write_text("")
    first.join(60)
    second.join(60)
    assert first.exitcode == 0 and second.exitcode == 0
    a, b = (json.loads((sig / f"done-{n}.json").read_text()) for n in "ab")
    assert a["key"] == b["key"] and not a["cached"] and b["cached"]
    assert b["info"] == {"n": 3, "by": "a"}  # b read a's entry
    assert not (sig / "built-by-b").exists()
    entry = root / "subset" / a["key"]
    assert (entry / "part.txt").read_text() == "first half\nsecond half\n" and (entry / "step.json").exists()
    assert not list((root / "subset").glob("*.partial"))


def _wait_for_log(proc, sig: Path) -> None:
    """The waiting process cannot write its log before it ends; its lock file attempt is visible instead: the
    lock file exists and the process is alive, blocked (it has not written done-b)."""
    deadline = time.monotonic() + 60
    while not list((sig.parent / "cache" / ".locks").glob("subset-*.lock")):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert proc.is_alive() and not (sig / "done-b.json").exists()


def test_a_killed_runs_partial_entry_is_cleared_by_the_next_lock_holder(tmp_path):
    cache = StepCache(tmp_path, lambda s: None)

    def crash(out: Path) -> dict:  # a failure mid-step leaves its partial folder, as a kill would
        (out / "half.txt").write_text("half")
        raise RuntimeError("the step failed")

    with pytest.raises(RuntimeError):
        cache.run("subset", SPEC, crash)
    partial = next((tmp_path / "subset").glob("*.partial"))
    assert (partial / "half.txt").exists() and not (partial / "step.json").exists()  # never taken as complete

    step = cache.run("subset", SPEC, lambda out: {"n": 3})
    assert not step.cached and not partial.exists() and (step.dir / "step.json").exists()
