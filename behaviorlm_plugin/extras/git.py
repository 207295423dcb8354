"""What git says about the checkout a run comes from (provenance of part files, the pre-registration commit)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(args: list[str], cwd: str | Path) -> str | None:
    """``git ARGS`` run in ``cwd``: its output, or None outside a checkout (or without git)."""
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
