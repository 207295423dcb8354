"""Fail-fast checks of model, tokenizer and adapter paths, before anything is loaded.

A local folder is checked for the files it needs.  A hub id (``org/name``) is looked up in the local
Hugging Face cache first; when it is not there, offline mode (``HF_HUB_OFFLINE=1``) is an error at
once, and online mode gets one short metadata call instead of minutes of retries.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ModelPathError(ValueError):
    """A model, tokenizer or adapter path that cannot be loaded; the message names the flag and the fix."""


def _offline() -> bool:
    return any(
        os.environ.get(k, "").lower() in ("1", "true", "yes") for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _in_hub_cache(repo_id: str, filename: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, filename), str)
    except Exception:
        return False


def _reachable_on_hub(repo_id: str) -> bool:
    try:
        from huggingface_hub import HfApi

        HfApi().model_info(repo_id, timeout=5)
        return True
    except Exception:
        return False


TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json")


def check_model_path(path: str, *, what: str = "--model", needs: tuple[str, ...] = ("config.json",)) -> None:
    """Raise :class:`ModelPathError` unless ``path`` is a local folder with one of ``needs`` or a usable hub id."""
    path = str(path)
    local = Path(path)
    if local.exists():
        if not local.is_dir() or not any((local / f).exists() for f in needs):
            raise ModelPathError(
                f"{what} {path}: not a Hugging Face folder (no {' or '.join(needs)} in it); pass the model's folder"
            )
        return
    if not HUB_ID.match(path):
        raise ModelPathError(f"{what} {path}: no such folder (and not a hub id like org/name); check the path")
    if any(_in_hub_cache(path, f) for f in needs):
        return
    if _offline():
        raise ModelPathError(
            f"{what} {path}: not a local folder and not in the Hugging Face cache, and offline mode is on; "
            f"download it first (huggingface-cli download {path}) or pass a local folder"
        )
    if not _reachable_on_hub(path):
        raise ModelPathError(
            f"{what} {path}: not a local folder, not in the Hugging Face cache, and the hub does not answer; "
            "pass a local folder (e.g. models/SmolLM2-135M-Instruct from `behaviorlm model prepare-default`)"
        )


def check_adapter_path(path: str | None, *, what: str = "--adapter") -> None:
    if path is None:
        return
    folder = Path(path)
    if not folder.is_dir():
        raise ModelPathError(f"{what} {path}: no such folder; pass the LoRA output_dir of a finished training stage")
    if not (folder / "adapter_config.json").exists():
        raise ModelPathError(
            f"{what} {path}: has no adapter_config.json, so it is not a (finished) LoRA adapter; "
            "pass the output_dir of a completed A-Tuning or B-Tuning run"
        )
