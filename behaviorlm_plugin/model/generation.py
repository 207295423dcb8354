"""Free generation parsed back to a candidate: the comparison the paper's generation baselines use."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from behaviorlm_plugin.model.trie import left_pad


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


def generate_labels(scorer, prompts, candidates, max_new_tokens: int = 16) -> list[GenerationResult]:
    """Greedy generation with ``scorer``'s model, parsed against each sample's candidates, as the paper's
    baselines evaluate.

    Same prompt encoding as :meth:`CandidateScorer.score`. An output that matches no candidate is *invalid*
    (``label=None``); see :func:`parse_generation` for the matching rules.
    """
    import torch

    encoded = [scorer.encode_sample(s, u, ["x"])[0] for s, u in prompts]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]), reverse=True)
    texts: list[str] = [""] * len(encoded)
    bar = None
    if scorer.config.show_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(encoded), desc="generating", unit="sample")
    bs = scorer.config.batch_size
    with torch.inference_mode():
        for start in range(0, len(order), bs):
            chunk = order[start : start + bs]
            ids, attn = left_pad([encoded[i] for i in chunk], scorer.pad_id)
            width = ids.shape[1]
            out = scorer.model.generate(
                input_ids=ids.to(scorer.device),
                attention_mask=attn.to(scorer.device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=scorer.tokenizer.eos_token_id,
                pad_token_id=scorer.pad_id,
            )
            for r, i in enumerate(chunk):
                texts[i] = scorer.tokenizer.decode(out[r, width:], skip_special_tokens=True)
            if bar is not None:
                bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return [parse_generation(t, c) for t, c in zip(texts, candidates, strict=True)]
