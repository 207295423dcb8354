"""The bench's content-addressed step cache: ``root/<kind>/<key>/step.json`` marks a finished step.

A key hashes the step's own settings, the data fingerprint and the keys of the steps it reads,
never a path, so a second suite over the same data reuses the first's work.  A step writes into
``<key>.partial/`` and is renamed into place when done, so a killed run resumes where it was.

Processes share a cache safely: a step runs under a lock on its key (``.locks/<kind>-<key>.lock``), so a second process
asking for the same step waits and then reads the finished entry, and only the lock holder ever clears a
``<key>.partial/`` (what a killed run left behind), never one another process is writing.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from behaviorlm_plugin.data.dataset import PreparedDataset
from behaviorlm_plugin.extras.constants import ALL_SPLITS, MIX_SPLIT
from behaviorlm_plugin.extras.fileio import atomic_write_json, disk_full, is_disk_full
from behaviorlm_plugin.extras.hashing import digest, file_hash

LOCKS_DIR = ".locks"
CACHE_VERSION = 2
"""Part of every key: raised whenever a step's output for the same settings changes (2: the A-Tuning mix
is drawn by ``data.aux_data.build_atuning_mix``, with the same streams as ``prepare``)."""


@dataclass
class Step:
    kind: str
    key: str
    dir: Path
    info: dict
    seconds: float
    cached: bool

    def summary(self) -> dict:
        return {"kind": self.kind, "key": self.key, "seconds": self.seconds, "cached": self.cached}


class StepCache:
    """Runs a step once per key; see the module docstring."""

    def __init__(self, root: str | Path, log: Callable[[str], None] = print) -> None:
        self.root = Path(root)
        self.log = log
        self.ran: list[Step] = []

    def key(self, kind: str, spec: dict) -> str:
        return digest({"kind": kind, "cache_version": CACHE_VERSION, **spec})

    def run(self, kind: str, spec: dict, fn: Callable[[Path], dict], label: str = "") -> Step:
        return self.run_together(kind, [spec], lambda todo: [fn(todo[0][1])], [label])[0]

    def run_together(
        self, kind: str, specs: list[dict], fn: Callable[[list[tuple[int, Path]]], list[dict]], labels: list[str]
    ) -> list[Step]:
        """:meth:`run` for several steps of one kind that are cheaper built together (a part's evaluations in one
        pass): ``fn`` gets ``(index in specs, folder)`` of each step not yet cached, once per key, and returns
        their infos in that order. Each step is still its own entry, under its own key and lock, exactly as
        :meth:`run` would make it."""
        keys = [self.key(kind, spec) for spec in specs]
        locks = self.root / LOCKS_DIR  # beside the entries, not among them: a kind's folder holds only steps
        locks.mkdir(parents=True, exist_ok=True)
        (self.root / kind).mkdir(parents=True, exist_ok=True)
        held = []
        try:
            for key in sorted(set(keys)):  # one order for every process: two runs never wait on each other
                lock = FileLock(str(locks / f"{kind}-{key}.lock"))
                try:
                    lock.acquire(timeout=0)
                except Timeout:
                    self.log(f"[bench] {kind} {key}: another process is running this step; waiting for it")
                    lock.acquire()
                held.append(lock)
            found = {k: self._cached(kind, k, self.root / kind / k, lb) for k, lb in zip(keys, labels, strict=True)}
            todo = list(dict.fromkeys(k for k in keys if found[k] is None))
            if todo:
                at = {k: keys.index(k) for k in todo}
                where = [at[k] for k in todo]

                def build(outs: list[Path]) -> list[dict]:
                    return fn(list(zip(where, outs, strict=True)))

                built = self._build(kind, todo, [specs[i] for i in where], build, [labels[i] for i in where])
                found.update(zip(todo, built, strict=True))
        finally:
            for lock in held:
                lock.release()
        steps = [found[k] for k in keys]
        self.ran.extend(steps)
        return steps

    def _cached(self, kind: str, key: str, final: Path, label: str) -> Step | None:
        marker = final / "step.json"
        if not marker.exists():
            return None
        rec = json.loads(marker.read_text())
        self.log(f"[bench] {kind} {key} {label}: cached ({rec['seconds']:.1f} s saved)")
        return Step(kind, key, final, rec["info"], rec["seconds"], True)

    def _build(self, kind: str, keys: list[str], specs: list[dict], fn, labels: list[str]) -> list[Step]:
        finals = [self.root / kind / key for key in keys]
        tmps = [final.parent / f"{key}.partial" for key, final in zip(keys, finals, strict=True)]
        for tmp in tmps:
            shutil.rmtree(tmp, ignore_errors=True)  # a killed run's leftovers: safe, this process holds the lock
            tmp.mkdir(parents=True)
        for key, label in zip(keys, labels, strict=True):
            self.log(f"[bench] {kind} {key} {label}: running{f' (with {len(keys) - 1} more)' if len(keys) > 1 else ''}")
        t0 = time.time()
        try:
            infos = fn(tmps)
            if len(infos) != len(keys):
                raise RuntimeError(f"a {kind} step built {len(infos)} entries for {len(keys)} keys")
            # A shared build's time is split evenly: what each entry saves when it is found cached.
            seconds = round((time.time() - t0) / len(keys), 2)
            # step.json last: a partial entry (a kill, a full disk) never has the marker that makes it complete.
            for key, spec, info, tmp in zip(keys, specs, infos, tmps, strict=True):
                record = {"kind": kind, "key": key, "spec": spec, "info": info, "seconds": seconds}
                if len(keys) > 1:
                    record["built_with"] = len(keys)
                atomic_write_json(tmp / "step.json", record)
        except OSError as err:
            if not is_disk_full(err):
                raise
            written = sum(f.stat().st_size for tmp in tmps for f in tmp.rglob("*") if f.is_file())
            for tmp in tmps:
                shutil.rmtree(tmp, ignore_errors=True)  # this process holds the keys' locks: no one else writes them
            what = f"running the {kind} step {', '.join(keys)} (it had written {written / 1e6:.1f} MB; it needs more)"
            raise disk_full(tmps[0], None, what) from err
        steps = []
        for key, info, tmp, final, label in zip(keys, infos, tmps, finals, labels, strict=True):
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
            self.log(f"[bench] {kind} {key} {label}: done in {seconds:.1f} s")
            steps.append(Step(kind, key, final, info, seconds, False))
        return steps


ADDED_SPLITS = ("val_balanced", "train_pool")
"""Splits added after the fingerprint's shape was fixed: left out, so a cache made before them stays valid. They are
drawn by the same prepare from the same windows as the fingerprinted splits, and a step that reads train_pool keys
its content itself (``cached_steps.select``)."""


def data_fingerprint(data: PreparedDataset) -> str:
    """Content of the prepared splits (not stats.json, whose timings change on every prepare)."""
    skip = (MIX_SPLIT, *ADDED_SPLITS)
    files = {s: file_hash(data.path(s)) for s in ALL_SPLITS if s not in skip and data.path(s).exists()}
    return digest({"files": files, "behaviors": data.stats.raw["behaviors"]})
