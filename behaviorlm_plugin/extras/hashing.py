"""Content hashes: stage fingerprints (pipeline) and step keys (bench) come from here."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def file_hash(path: str | Path) -> str:
    """sha256 of a file, or of every file under a folder (names and contents)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def maybe_hash(path: str | Path) -> str | None:
    """``file_hash`` of a path that may not exist yet (a stage's input before the stage ran)."""
    return file_hash(path) if Path(path).exists() else None


def digest(obj: Any) -> str:
    """Short stable hash of a JSON-able object (stage fingerprints, bench step keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
