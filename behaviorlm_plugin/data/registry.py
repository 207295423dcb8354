"""LLaMA-Factory dataset registration: merge entries into ``dataset_info.json``.

``dataset_info.json`` is a file users own: other entries must survive, the write is
atomic, and re-registering a name that points elsewhere is refused unless the caller
says ``overwrite``.  Entries are plain LLaMA-Factory entries, so the directory works
as ``dataset_dir`` for an unmodified ``llamafactory-cli train``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from filelock import FileLock

from behaviorlm_plugin.extras.constants import DATASET_INFO
from behaviorlm_plugin.extras.fileio import atomic_write_json

ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output", "system": "system"}
SHAREGPT_COLUMNS = {"messages": "conversations", "system": "system"}
SHAREGPT_TAGS = {
    "role_tag": "from",
    "content_tag": "value",
    "user_tag": "human",
    "assistant_tag": "gpt",
}


class RegistrationError(ValueError):
    """A registration that would lose or silently change a user's entry."""


def read_dataset_info(dataset_dir: str | Path) -> dict:
    path = Path(dataset_dir) / DATASET_INFO
    if not path.exists():
        return {}
    try:
        info = json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as err:
        raise RegistrationError(
            f"{path}: line {err.lineno} is not valid JSON ({err.msg}); fix the file before registering more datasets"
        ) from err
    if not isinstance(info, dict):
        raise RegistrationError(f"{path}: top level must be a JSON object mapping names to entries")
    return info


def make_entry(file_name: str, formatting: Literal["alpaca", "sharegpt"]) -> dict:
    """A LLaMA-Factory entry for one of our files (``file_name`` relative to dataset_dir)."""
    if formatting == "alpaca":
        return {"file_name": file_name, "formatting": "alpaca", "columns": dict(ALPACA_COLUMNS)}
    if formatting == "sharegpt":
        return {
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": dict(SHAREGPT_COLUMNS),
            "tags": dict(SHAREGPT_TAGS),
        }
    raise ValueError(f"formatting must be 'alpaca' or 'sharegpt', got {formatting!r}")


def check_registration(dataset_dir: str | Path, entries: dict[str, dict], *, overwrite: bool = False) -> None:
    """Raise before anything is written if registering ``entries`` would clash."""
    info = read_dataset_info(dataset_dir)
    clashes = [name for name, entry in entries.items() if name in info and info[name] != entry]
    if clashes and not overwrite:
        path = Path(dataset_dir) / DATASET_INFO
        detail = "; ".join(f"{n!r} -> {info[n].get('file_name', info[n])}" for n in clashes[:5])
        raise RegistrationError(
            f"{path}: entr{'y' if len(clashes) == 1 else 'ies'} already registered with a different file or "
            f"format: {detail}. Choose another --name, or pass --overwrite to replace them."
        )


def registry_lock(dataset_dir: str | Path) -> FileLock:
    """The inter-process lock every read-modify-write of ``dataset_info.json`` holds."""
    return FileLock(str(Path(dataset_dir) / ".dataset_info.lock"))


def check_writable(dataset_dir: str | Path) -> None:
    """Refuse up front (before any work) a dataset folder or registry we could not write."""
    dataset_dir = Path(dataset_dir)
    if dataset_dir.exists() and not dataset_dir.is_dir():
        raise RegistrationError(f"{dataset_dir}: is a file, not a folder; choose another --dataset-dir")
    probe = dataset_dir
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise RegistrationError(
            f"{dataset_dir}: cannot write there ({probe} is read-only); choose another --dataset-dir"
        )
    info = dataset_dir / DATASET_INFO
    if info.exists() and not os.access(info, os.W_OK):
        raise RegistrationError(
            f"{info}: the registry is read-only, so nothing could be registered; make it writable "
            f"(chmod u+w {info}) or choose another --dataset-dir"
        )


def register_datasets(*, dataset_dir: str | Path, entries: dict[str, dict], overwrite: bool = False) -> Path:
    """Merge ``entries`` into ``dataset_dir/dataset_info.json`` atomically, under the registry lock.

    Identical re-registration is a no-op; a different entry under an existing name is
    refused unless ``overwrite``.  Every entry must name a file that exists.
    """
    dataset_dir = Path(dataset_dir)
    if not entries:
        raise ValueError("nothing to register: entries is empty")
    for name, entry in entries.items():
        if not isinstance(name, str) or not name or any(c.isspace() for c in name):
            raise ValueError(f"dataset name must be a non-empty string without spaces, got {name!r}")
        if "file_name" not in entry:
            raise ValueError(f"entry {name!r} has no 'file_name'")
        if not (dataset_dir / entry["file_name"]).exists():
            raise FileNotFoundError(
                f"entry {name!r}: {dataset_dir / entry['file_name']} does not exist; write the data before registering"
            )
    check_writable(dataset_dir)
    with registry_lock(dataset_dir):
        check_registration(dataset_dir, entries, overwrite=overwrite)
        info = read_dataset_info(dataset_dir)
        info.update(entries)
        path = dataset_dir / DATASET_INFO
        atomic_write_json(path, info)
    return path


def unregister_datasets(dataset_dir: str | Path, names: list[str]) -> list[str]:
    """Remove entries (under the registry lock); returns the names that were registered."""
    dataset_dir = Path(dataset_dir)
    with registry_lock(dataset_dir):
        info = read_dataset_info(dataset_dir)
        gone = [n for n in names if n in info]
        if gone:
            atomic_write_json(dataset_dir / DATASET_INFO, {k: v for k, v in info.items() if k not in gone})
    return gone


def entries_under(dataset_dir: str | Path, folder: str) -> dict[str, dict]:
    """Registered entries whose file lives under ``folder/`` (e.g. a dataset's derived B-Tuning sets)."""
    info = read_dataset_info(dataset_dir)
    return {
        n: e for n, e in info.items() if isinstance(e, dict) and str(e.get("file_name", "")).startswith(f"{folder}/")
    }
