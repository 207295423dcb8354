"""Free generation parsed back to a candidate: the comparison the paper's generation baselines use."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class GenerationResult:
    raw: str
    """The decoded generation."""
    label: str | None
    """The candidate it was parsed to, or ``None`` when it matches none (an invalid output)."""


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s-]", " ", text.lower()).split())


def parse_generation(text: str, candidates: Sequence[str]) -> GenerationResult:
    """Map free text to a candidate: exact match after normalising case and punctuation on the first
    line, else the longest candidate that occurs in it (so "Watching video clip" beats "Watching video").
    Nothing found: invalid."""
    first = _norm(text.strip().splitlines()[0] if text.strip() else "")
    by_norm = {_norm(c): c for c in candidates}
    if first in by_norm:
        return GenerationResult(text, by_norm[first])
    padded = f" {first} "
    hits = [c for n, c in by_norm.items() if n and f" {n} " in padded]
    return GenerationResult(text, max(hits, key=len) if hits else None)
