"""A run's ``manifest.json`` and the fingerprinted stage loop that reads and writes it.

Each stage has a *fingerprint*: a hash of its own settings (its *spec*, which includes the
hashes of the files it reads) and the fingerprint of the stage before it.  On a re-run a stage
whose fingerprint and outputs are unchanged is reused; anything else (a killed stage, a changed
input) runs again, and so does everything after it.  Nothing stale is ever reused silently.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from behaviorlm_plugin.extras.fileio import atomic_write_json
from behaviorlm_plugin.extras.hashing import digest


@dataclass
class StageResult:
    outputs: dict[str, str]
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    """One row of a run's stage table: its settings (``spec``) and its work (``run``; None = skipped)."""

    name: str
    spec: Callable[[], dict]
    run: Callable[[], StageResult | None]


class Manifest:
    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "manifest.json"
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {"stages": {}}

    def save(self) -> None:
        atomic_write_json(self.path, self.data)

    def stage(self, name: str) -> dict:
        return self.data["stages"].get(name, {})

    def set(self, name: str, **kw) -> None:
        self.data["stages"].setdefault(name, {}).update(kw)
        self.save()


def _reusable(prev: dict, fingerprint: str) -> bool:
    if prev.get("fingerprint") != fingerprint:
        return False
    if prev.get("status") == "skipped":
        return True
    outputs = prev.get("outputs")
    return prev.get("status") == "done" and bool(outputs) and all(Path(p).exists() for p in outputs.values())


def run_stages(
    stages: list[Stage], manifest: Manifest, *, log: Callable[[str], None], until: str | None = None
) -> dict:
    """Run (or reuse) each stage in order; returns the manifest's data."""
    upstream = ""
    for stage in stages:
        spec = stage.spec()
        fingerprint = digest({"stage": stage.name, "spec": spec, "upstream": upstream})
        prev = manifest.stage(stage.name)
        if _reusable(prev, fingerprint):
            log(f"[{stage.name}] up to date (fingerprint {fingerprint}); reusing {prev.get('outputs', {})}")
        else:
            if prev:
                why = "it was interrupted" if prev.get("status") == "running" else "its inputs changed"
                log(f"[{stage.name}] re-running: {why}")
            started = time.time()
            manifest.set(
                stage.name,
                status="running",
                fingerprint=fingerprint,
                inputs=spec,
                started=started,
                outputs={},
                finished=None,
            )
            result = stage.run()
            status = "skipped" if result is None else "done"
            seconds = round(time.time() - started, 2)
            manifest.set(
                stage.name,
                status=status,
                outputs=result.outputs if result else {},
                info=result.info if result else {},
                finished=time.time(),
                seconds=seconds,
            )
            log(f"[{stage.name}] {status} in {seconds:.1f} s")
        upstream = fingerprint
        if stage.name == until:
            break
    return manifest.data
