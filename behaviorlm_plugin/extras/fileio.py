"""Atomic file writes: a crash, a kill or a full disk never leaves a half-written file behind."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path


class DiskFullError(OSError):
    """A write ran out of space (``ENOSPC``); the message names the path, the space needed and the space free."""


def free_bytes(path: str | Path) -> int | None:
    """Free space on the file system that holds ``path`` (its nearest existing parent), or None."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def _mb(n: int | None) -> str:
    return "unknown" if n is None else f"{n / 1e6:.1f} MB"


def disk_full(path: str | Path, needed: int | None, what: str = "writing") -> DiskFullError:
    """The error for an ``ENOSPC`` at ``path``: what was being written, the space it needs and what is free."""
    return DiskFullError(
        errno.ENOSPC,
        f"{path}: no space left on the device while {what} (needs {_mb(needed)}, {_mb(free_bytes(path))} free); "
        "free some space and run the command again: nothing half-written was kept",
    )


def is_disk_full(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write to a temp file in the same directory, fsync, then rename over ``path``."""
    path = Path(path)
    data = text.encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        if is_disk_full(err):
            raise disk_full(path, len(data)) from err
        raise
    try:
        with os.fdopen(fd, "wb") as fh:
            write_all(fh, data)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp makes 0600: keep the mode of the file we replace, else the usual permissions.
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if is_disk_full(err):
            raise disk_full(path, len(data)) from err
        raise


def write_all(fh, data: bytes) -> None:
    """``fh.write(data)``: one seam, so tests can make the disk fill up mid-write."""
    fh.write(data)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_json(path: str | Path, obj, *, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def atomic_write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    """Write one JSON object per line; returns the number of rows."""
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
    return len(lines)


def read_jsonl(path: str | Path) -> list[dict]:
    """Read JSON Lines; a bad line raises with the file and line number."""
    path = Path(path)
    rows = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: line {lineno} is not valid JSON ({err.msg}); fix or remove it") from err
    return rows


def atomic_write_table(df, path: str | Path) -> None:
    """A pandas frame as .parquet, .csv or .jsonl (by suffix), written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix == ".parquet":
        df.to_parquet(tmp, index=False)
    elif path.suffix == ".csv":
        df.to_csv(tmp, index=False)
    elif path.suffix == ".jsonl":
        df.astype({"timestamp": str}).to_json(tmp, orient="records", lines=True)
    else:
        raise ValueError(f"{path}: the file must end in .parquet, .csv or .jsonl")
    tmp.replace(path)
