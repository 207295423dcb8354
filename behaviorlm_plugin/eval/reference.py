"""Reference rows on exactly the samples a model was evaluated on: the majority class and hour+place.

A figure on 40 samples means little alone.  These two context-free rules need no model: the majority
class (what a model that learned only the prior would score) and the most frequent behavior for the next
event's (hour, place), both fit on the prepared ``train_all`` samples.  They are written as ordinary
``preds.jsonl`` rows so the same metric code scores them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from behaviorlm_plugin.data.dataset import PreparedDataset
from behaviorlm_plugin.eval.rows import row_from_probs
from behaviorlm_plugin.extras.fileio import read_jsonl

# Add-one smoothing keeps every candidate's probability positive, so rankings and hr@k stay defined.
SMOOTHING = 1.0


def _features(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def reference_rows(data: PreparedDataset, split: str, ids: list) -> dict[str, list[dict]]:
    """``{"majority": rows, "hour+place": rows}`` for the samples ``ids`` of ``split``, in that order."""
    train = _features(data.path("train_all").with_suffix(".features.npz"))
    target = _features(data.path(split).with_suffix(".features.npz"))
    behaviors = [str(b) for b in train["behaviors"]]
    n_b, n_p = len(behaviors), len(train["places"])
    prior = np.bincount(train["label"], minlength=n_b).astype(float) + SMOOTHING
    table = np.zeros((24 * n_p, n_b))
    # int64 first: the features are int8 hours, and hour * places past 127 would wrap round to another cell
    cell = train["next_hour"].astype(np.int64) * n_p + train["next_place"].astype(np.int64)
    np.add.at(table, (cell, train["label"]), 1.0)
    metas = read_jsonl(data.path(split).with_suffix(".meta.jsonl"))
    index = {m["id"]: i for i, m in enumerate(metas)}
    missing = [i for i in ids if i not in index]
    if missing:
        raise ValueError(
            f"{data.path(split)}: no sample with id {missing[0]!r}; the predictions are not from this data"
        )
    out: dict[str, list[dict]] = {"majority": [], "hour+place": []}
    for sid in ids:
        i = index[sid]
        meta, cands = metas[i], metas[i]["candidates"]
        col = [behaviors.index(c) for c in cands]
        key = int(target["next_hour"][i]) * n_p + int(target["next_place"][i])
        # an (hour, place) never seen in training falls back to the prior, as prepare's baseline does
        ctx = table[key] + SMOOTHING * prior / prior.sum() if table[key].sum() else prior
        out["majority"].append(row_from_probs(meta, cands, prior[col], method="majority", fmt=None))
        out["hour+place"].append(row_from_probs(meta, cands, ctx[col], method="hour+place", fmt=None))
    return out
