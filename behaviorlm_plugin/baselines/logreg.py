"""The logistic-regression baseline: one-hot facts of each window, a multinomial logistic regression (scikit-learn),
and predictions in ``preds.jsonl``'s format (every candidate ranked with a probability, so the prior correction and
the bootstrap treat it like any other row).

Its training subset is drawn exactly as the bench's natural ``subset`` step draws one (the features are
line-aligned with ``train_all.jsonl``), so at the same seed and size it sees the same samples as full fine-tuning.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import sparse

from behaviorlm_plugin.data.dataset import PreparedDataset
from behaviorlm_plugin.eval.evaluate import evaluate_file
from behaviorlm_plugin.eval.metrics import SUMMARY_KEYS
from behaviorlm_plugin.eval.rows import rows_from_class_probs
from behaviorlm_plugin.extras.fileio import atomic_write_json, atomic_write_jsonl, read_jsonl
from behaviorlm_plugin.hparams.logreg_args import LogRegConfig


class LogRegError(ValueError):
    """The baseline cannot run (scikit-learn missing, a training set with one behavior); the message says why."""


def subset_index(n_total: int, n: int | None, seed: int) -> np.ndarray:
    """The rows of a natural subset: the bench's ``subset`` step's draw (``runs/steps.py``), in that order."""
    if n is None or n >= n_total:
        return np.arange(n_total)
    return np.random.default_rng([seed, 2]).choice(n_total, n, replace=False)


def load(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: features not found; re-run `behaviorlm prepare` (it writes .features.npz)")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def design(f: dict[str, np.ndarray], history: int) -> sparse.csr_matrix:
    """One-hot blocks: next place, next hour, next day, the last ``history`` behaviors (most recent first) and the
    last place."""
    n_b, n_p, n = len(f["behaviors"]), len(f["places"]), len(f["label"])
    h = min(history, f["hist_behavior"].shape[1])
    blocks = [(f["next_place"], n_p), (f["next_hour"], 24), (f["next_dow"], 7)]
    blocks += [(f["hist_behavior"][:, -1 - j], n_b) for j in range(h)]
    blocks += [(f["hist_place"][:, -1], n_p)] if f["hist_place"].shape[1] else []
    cols, offset = [], 0
    for values, width in blocks:
        cols.append(offset + np.asarray(values, dtype=np.int64))
        offset += width
    col = np.stack(cols, axis=1).ravel()
    row = np.repeat(np.arange(n), len(blocks))
    return sparse.csr_matrix((np.ones(len(col)), (row, col)), shape=(n, offset))


def fit(train: dict[str, np.ndarray], cfg: LogRegConfig):
    try:
        from sklearn.linear_model import LogisticRegression  # deferred: an optional row's heavy import
    except ImportError as err:  # pragma: no cover - the install script installs it
        raise LogRegError("the logistic-regression row needs scikit-learn: pip install scikit-learn") from err
    y = np.asarray(train["label"], dtype=np.int64)
    if len(np.unique(y)) < 2:
        raise LogRegError(f"the training subset has one behavior only ({len(y)} samples); give more samples")
    model = LogisticRegression(C=cfg.c, max_iter=cfg.max_iter)
    model.fit(design(train, cfg.history), y)
    return model


def probabilities(model, f: dict[str, np.ndarray], cfg: LogRegConfig) -> np.ndarray:
    """[n, n_behaviors]: the model's probabilities, 0 for a behavior the training subset never had."""
    out = np.zeros((len(f["label"]), len(f["behaviors"])))
    out[:, model.classes_] = model.predict_proba(design(f, cfg.history))
    return out


def write_predictions(probs: np.ndarray, behaviors: list[str], meta_path: Path, out: Path) -> list[dict]:
    metas = read_jsonl(meta_path)
    if len(metas) != len(probs):
        raise ValueError(f"{meta_path} has {len(metas)} rows but the features have {len(probs)}; re-run prepare")
    rows = rows_from_class_probs(probs, behaviors, metas, fmt="logreg")
    atomic_write_jsonl(out, rows)
    return rows


def run_logreg(
    data: PreparedDataset,
    out_dir: str | Path,
    *,
    config: LogRegConfig | None = None,
    train_size: int | None = None,
    seed: int = 0,
    splits: tuple[str, ...] = ("test", "test_balanced"),
) -> dict:
    """Train on a natural subset of train_all, predict and evaluate ``splits``; writes into ``out_dir``."""
    cfg = config or LogRegConfig()
    train = load(data.features_path("train_all"))
    idx = subset_index(len(train["label"]), train_size, seed)
    model = fit({**train, **{k: train[k][idx] for k in train if k not in ("behaviors", "places")}}, cfg)
    behaviors = [str(b) for b in train["behaviors"]]
    out = Path(out_dir)
    result = {"train_size": len(idx), "config": cfg.__dict__, "metrics": {}}
    for split in splits:
        f = load(data.features_path(split))
        preds = out / split / "preds.jsonl"
        write_predictions(probabilities(model, f, cfg), behaviors, data.meta_path(split), preds)
        m = evaluate_file(preds, data.stats, out / split, name=f"logreg/{split}")
        result["metrics"][split] = {k: m.get(k) for k in SUMMARY_KEYS}
    atomic_write_json(out / "logreg.json", result)
    return result
