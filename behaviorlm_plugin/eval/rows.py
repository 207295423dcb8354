"""The prediction-row schema of ``preds.jsonl``: every predictor (LLM scorer, generation, SASRec) writes it here."""

from __future__ import annotations

import numpy as np


def prediction_row(
    meta: dict,
    prediction: str | None,
    ranked: list[dict],
    *,
    true_prob: float | None,
    true_rank: int | None,
    method: str,
    fmt: str | None = None,
    n_candidates: int | None = None,
) -> dict:
    """One line of ``preds.jsonl`` for the sample described by ``meta`` (its ``.meta.jsonl`` row)."""
    return {
        "id": meta["id"],
        "label": meta["label"],
        "prediction": prediction,
        "correct": prediction == meta["label"],
        "true_prob": true_prob,
        "true_rank": true_rank,
        "ranked": ranked,
        "method": method,
        "anchor_tail": meta.get("anchor_tail"),
        "head_medium_tail": meta.get("head_medium_tail"),
        "user_id": meta.get("user_id"),
        "format": fmt if fmt is not None else meta.get("format"),
        "n_candidates": n_candidates if n_candidates is not None else len(meta["candidates"]),
    }


def row_from_probs(meta: dict, candidates: list[str], probs: np.ndarray, *, method: str, fmt: str | None) -> dict:
    """A scored row from a probability per candidate (normalised here), ranked highest first."""
    p = np.asarray(probs, dtype=float)
    p = p / p.sum()
    order = np.argsort(-p, kind="stable")
    ranked = [{"behavior": candidates[i], "prob": float(p[i])} for i in order]
    t = candidates.index(meta["label"])
    return prediction_row(
        meta,
        ranked[0]["behavior"],
        ranked,
        true_prob=float(p[t]),
        true_rank=int((p > p[t]).sum()) + 1,
        method=method,
        fmt=fmt,
        n_candidates=len(candidates),
    )


def rows_from_class_probs(probs: np.ndarray, behaviors: list[str], metas: list[dict], *, fmt: str) -> list[dict]:
    """Scored rows of a classifier over all ``behaviors`` (``probs``: [samples, behaviors]), each ranked over its own
    candidates (the baselines' predictions, in ``behaviorlm predict``'s format)."""
    if len(metas) != len(probs):
        raise ValueError(f"{len(metas)} samples but {len(probs)} rows of probabilities; re-run prepare")
    index = {b: i for i, b in enumerate(behaviors)}
    rows = []
    for m, p in zip(metas, probs, strict=True):
        cand = [b for b in m["candidates"] if b in index]
        rows.append(row_from_probs(m, cand, np.array([p[index[b]] for b in cand]), method="score", fmt=fmt))
    return rows
