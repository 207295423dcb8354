"""A prepared split's samples as API request bodies (for load tests, examples and the equivalence test).

``prepare`` writes each split's integer features line-aligned with its JSONL (``*.features.npz``); they hold
every history event's behavior, day, hour and place, so the request for sample ``i`` renders the same prompt
as line ``i`` when the dataset was prepared with one prompt format and a fixed candidate order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from behaviorlm_plugin.data.prompts import DAY_NAMES


def requests_from_features(path: str | Path, n: int | None = None, *, top_k: int | None = None) -> list[dict]:
    """The first ``n`` samples of a ``*.features.npz`` as ``POST /v1/predict`` bodies (``top_k``: default all)."""
    with np.load(path, allow_pickle=False) as f:
        behaviors, places = [str(b) for b in f["behaviors"]], [str(p) for p in f["places"]]
        cols = {k: f[k] for k in ("hist_behavior", "hist_dow", "hist_hour", "hist_place")}
        nxt = {k: f[k] for k in ("next_dow", "next_hour", "next_place")}
    total = len(nxt["next_dow"]) if n is None else min(n, len(nxt["next_dow"]))
    out = []
    for i in range(total):
        history = [
            {"behavior": behaviors[b], "day": DAY_NAMES[d], "hour": int(h), "place": places[p]}
            for b, d, h, p in zip(
                cols["hist_behavior"][i], cols["hist_dow"][i], cols["hist_hour"][i], cols["hist_place"][i], strict=True
            )
        ]
        event = {
            "day": DAY_NAMES[nxt["next_dow"][i]],
            "hour": int(nxt["next_hour"][i]),
            "place": places[nxt["next_place"][i]],
        }
        out.append({"history": history, "next": event, "top_k": top_k or len(behaviors)})
    return out
