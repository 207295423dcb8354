"""All-or-nothing dataset folders: versions, one atomic commit, locks and recovery.

A prepared dataset ``DATASET_DIR/NAME`` is a symbolic link to a complete, immutable version folder
``DATASET_DIR/.NAME.v<N>``.  ``prepare`` builds the next version in a staging folder, renames it
to ``.NAME.v<N+1>``, and then *commits* by replacing the link in one atomic rename.  Whatever
instant a run is killed at, ``NAME`` points at a complete version: the old one before the commit,
the new one after it.  LLaMA-Factory entries name ``NAME/<split>.jsonl``, so they stay valid across
versions; entries built from an old version (a B-Tuning set, ``NAME_btuning*``) are unregistered
before the commit, because their files live in the old version.

Locks (``filelock``): one per dataset name, held for a whole ``prepare`` (two runs of one name
serialise), and one for ``dataset_info.json`` (every read-modify-write; see ``data/registry.py``).

Recovery: leftovers of a killed run (staging folders, versions no link points at) are removed under
the name lock at the next ``prepare``; a dataset folder from before versioning (a real folder) is
moved into ``.NAME.v0`` on its first overwrite.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from filelock import FileLock

from behaviorlm_plugin.extras.pause import pause_point

COMPLETE = ".complete"


def name_lock(dataset_dir: str | Path, name: str) -> FileLock:
    return FileLock(str(Path(dataset_dir) / f".{name}.lock"))


def _version_re(name: str) -> re.Pattern:
    return re.compile(rf"^\.{re.escape(name)}\.v(\d+)$")


def versions(dataset_dir: Path, name: str) -> dict[int, Path]:
    pattern = _version_re(name)
    out = {}
    for p in dataset_dir.glob(f".{name}.v*"):
        m = pattern.match(p.name)
        if m and (p / COMPLETE).exists():
            out[int(m.group(1))] = p
    return out


def current_version(dataset_dir: Path, name: str) -> Path | None:
    """The version folder ``NAME`` points at (None when ``NAME`` is missing or a plain folder)."""
    link = dataset_dir / name
    if link.is_symlink():
        return (dataset_dir / os.readlink(link)).resolve()
    return None


def is_versioned(dataset_dir: Path, name: str) -> bool:
    """``NAME`` is a link to one of our version folders (so replacing the link loses nothing of the user's)."""
    current = current_version(dataset_dir, name)
    return (
        current is not None and current.parent == dataset_dir.resolve() and bool(_version_re(name).match(current.name))
    )


def staging_dir(dataset_dir: Path, name: str) -> Path:
    """A fresh folder to build the next version in (removed first if a killed run left it)."""
    path = dataset_dir / f".{name}.staging-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _swap_link(dataset_dir: Path, name: str, target: Path) -> None:
    tmp = dataset_dir / f".{name}.link-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    os.symlink(target.name, tmp)
    os.replace(tmp, dataset_dir / name)  # the commit: one atomic rename
    _fsync_dir(dataset_dir)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def adopt_legacy(dataset_dir: Path, name: str) -> None:
    """A real ``NAME`` folder (prepared before versioning) becomes version 0 behind a link.

    The two renames leave ``NAME`` missing for an instant; :func:`recover` relinks it if a kill lands there.
    """
    folder = dataset_dir / name
    if folder.is_symlink() or not folder.is_dir() or not (folder / "stats.json").is_file():
        return
    target = dataset_dir / f".{name}.v0"
    shutil.rmtree(target, ignore_errors=True)
    (folder / COMPLETE).touch()
    folder.rename(target)
    pause_point("adopted")
    _swap_link(dataset_dir, name, target)


def recover(dataset_dir: Path, name: str) -> None:
    """Under the name lock: relink a missing ``NAME`` to its newest complete version; drop leftovers."""
    link = dataset_dir / name
    found = versions(dataset_dir, name)
    if not link.exists() and not link.is_symlink() and found:
        _swap_link(dataset_dir, name, found[max(found)])
    current = current_version(dataset_dir, name)
    for p in dataset_dir.glob(f".{name}.*"):
        stale_version = _version_re(name).match(p.name) and (current is None or p.resolve() != current)
        if p.name.startswith((f".{name}.staging-", f".{name}.link-")) or stale_version:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def commit(dataset_dir: Path, name: str, staging: Path) -> Path:
    """Make ``staging`` the dataset's new version and point ``NAME`` at it (the atomic commit)."""
    (staging / COMPLETE).touch()
    number = max(versions(dataset_dir, name), default=0) + 1
    target = dataset_dir / f".{name}.v{number}"
    staging.rename(target)
    _fsync_dir(dataset_dir)
    pause_point("versioned")
    _swap_link(dataset_dir, name, target)
    pause_point("committed")
    return target
