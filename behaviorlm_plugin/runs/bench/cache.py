"""The bench's content-addressed step cache: ``root/<kind>/<key>/step.json`` marks a finished step.

A key hashes the step's own settings, the data fingerprint and the keys of the steps it reads,
never a path, so a second suite over the same data reuses the first's work.  A step writes into
``<key>.partial/`` and is renamed into place when done, so a killed run resumes where it was.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from behaviorlm_plugin.data.dataset import PreparedDataset
from behaviorlm_plugin.extras.constants import ALL_SPLITS, MIX_SPLIT
from behaviorlm_plugin.extras.fileio import atomic_write_json
from behaviorlm_plugin.extras.hashing import digest, file_hash

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

    def run(self, kind: str, spec: dict, fn: Callable[[Path], dict], label: str = "") -> Step:
        key = digest({"kind": kind, "cache_version": CACHE_VERSION, **spec})
        final = self.root / kind / key
        marker = final / "step.json"
        if marker.exists():
            rec = json.loads(marker.read_text())
            step = Step(kind, key, final, rec["info"], rec["seconds"], True)
            self.log(f"[bench] {kind} {key} {label}: cached ({rec['seconds']:.1f} s saved)")
        else:
            tmp = self.root / kind / f"{key}.partial"
            shutil.rmtree(tmp, ignore_errors=True)  # what a killed run left behind
            tmp.mkdir(parents=True)
            self.log(f"[bench] {kind} {key} {label}: running")
            t0 = time.time()
            info = fn(tmp)
            seconds = round(time.time() - t0, 2)
            atomic_write_json(
                tmp / "step.json", {"kind": kind, "key": key, "spec": spec, "info": info, "seconds": seconds}
            )
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
            step = Step(kind, key, final, info, seconds, False)
            self.log(f"[bench] {kind} {key} {label}: done in {seconds:.1f} s")
        self.ran.append(step)
        return step


def data_fingerprint(data: PreparedDataset) -> str:
    """Content of the prepared splits (not stats.json, whose timings change on every prepare)."""
    files = {s: file_hash(data.path(s)) for s in ALL_SPLITS if s != MIX_SPLIT and data.path(s).exists()}
    return digest({"files": files, "behaviors": data.stats.raw["behaviors"]})
