"""SASRec baseline: a transformer next-behavior classifier over the same windows.

Same samples, splits and metrics as the LLM: it reads the ``.features.npz`` files that
``prepare`` writes beside each split (line-aligned with the JSONL), so every number is
comparable.  Each history event is the sum of behavior, place, day-of-week, hour and
position embeddings; a causal transformer encoder (Pre-LN or Post-LN) reads the sequence;
the last position's state plus the next event's (day, hour, place) embedding goes through
an MLP to logits over all behaviors, trained with cross-entropy and early stopping on val
accuracy.  ``search`` tunes the learning rate and size on val, as a real baseline should.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from behaviorlm_plugin.data.dataset import PreparedDataset
from behaviorlm_plugin.eval.evaluate import evaluate_file
from behaviorlm_plugin.eval.metrics import SUMMARY_KEYS
from behaviorlm_plugin.eval.rows import rows_from_class_probs
from behaviorlm_plugin.extras.fileio import atomic_write_json, atomic_write_jsonl, read_jsonl
from behaviorlm_plugin.hparams.sasrec_args import DEFAULT_SASREC_GRID, SASRecConfig


@dataclass
class Features:
    hist_behavior: torch.Tensor
    hist_place: torch.Tensor
    hist_dow: torch.Tensor
    hist_hour: torch.Tensor
    next_dow: torch.Tensor
    next_hour: torch.Tensor
    next_place: torch.Tensor
    label: torch.Tensor
    behaviors: list[str] = field(default_factory=list)
    places: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.label)

    def subset(self, idx: np.ndarray) -> Features:
        t = torch.as_tensor(idx, dtype=torch.long)
        kw = {k: getattr(self, k)[t] for k in _TENSORS}
        return Features(**kw, behaviors=self.behaviors, places=self.places)

    def to(self, device: str | torch.device) -> Features:
        kw = {k: getattr(self, k).to(device) for k in _TENSORS}
        return Features(**kw, behaviors=self.behaviors, places=self.places)


_TENSORS = ("hist_behavior", "hist_place", "hist_dow", "hist_hour", "next_dow", "next_hour", "next_place", "label")


def load_features(path: str | Path) -> Features:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: features not found; re-run `behaviorlm prepare` (it writes .features.npz)")
    with np.load(path, allow_pickle=False) as z:
        kw = {k: torch.as_tensor(z[k].astype(np.int64)) for k in _TENSORS}
        return Features(**kw, behaviors=[str(b) for b in z["behaviors"]], places=[str(p) for p in z["places"]])


class SASRec(nn.Module):
    def __init__(self, n_behaviors: int, n_places: int, history_len: int, cfg: SASRecConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.behavior = nn.Embedding(n_behaviors, d)
        self.place = nn.Embedding(n_places, d)
        self.dow = nn.Embedding(7, d)
        self.hour = nn.Embedding(24, d)
        self.pos = nn.Embedding(history_len, d)
        layer = nn.TransformerEncoderLayer(d, cfg.n_heads, 4 * d, cfg.dropout, batch_first=True, norm_first=cfg.pre_ln)
        self.encoder = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Sequential(nn.Linear(2 * d, d), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(d, n_behaviors))
        mask = torch.triu(torch.full((history_len, history_len), float("-inf")), diagonal=1)
        self.register_buffer("causal", mask, persistent=False)

    def forward(self, f: Features) -> torch.Tensor:
        h = f.hist_behavior.shape[1]
        pos = torch.arange(h, device=f.hist_behavior.device)
        x = (
            self.behavior(f.hist_behavior)
            + self.place(f.hist_place)
            + self.dow(f.hist_dow)
            + self.hour(f.hist_hour)
            + self.pos(pos)[None]
        )
        x = self.encoder(self.drop(x), mask=self.causal[:h, :h])
        last = self.norm(x[:, -1])
        ctx = self.dow(f.next_dow) + self.hour(f.next_hour) + self.place(f.next_place)
        return self.head(torch.cat([last, ctx], dim=-1))


def _batches(f: Features, batch_size: int, rng: np.random.Generator | None):
    order = rng.permutation(len(f)) if rng is not None else np.arange(len(f))
    for i in range(0, len(f), batch_size):
        yield f.subset(order[i : i + batch_size])


@torch.no_grad()
def predict_proba(model: SASRec, f: Features, batch_size: int = 1024) -> np.ndarray:
    model.eval()
    device = next(model.parameters()).device
    return np.concatenate(
        [torch.softmax(model(b.to(device)), -1).float().cpu().numpy() for b in _batches(f, batch_size, None)]
    )


def _train_log_prior(train: Features, device) -> torch.Tensor:
    counts = np.bincount(train.label.numpy(), minlength=len(train.behaviors))
    return torch.tensor(np.log(np.maximum(counts / max(1, counts.sum()), 1e-7)), dtype=torch.float32, device=device)


def val_score(probs: np.ndarray, labels: np.ndarray, balanced: bool) -> float:
    """Val accuracy, or with ``balanced`` the mean per-class accuracy (the logit-adjusted loss's target)."""
    ok = probs.argmax(1) == labels
    if not balanced:
        return float(ok.mean())
    support = np.bincount(labels, minlength=probs.shape[1])
    hits = np.bincount(labels, weights=ok, minlength=probs.shape[1])
    return float((hits[support > 0] / support[support > 0]).mean())


def train(train: Features, val: Features, cfg: SASRecConfig) -> tuple[SASRec, dict]:
    """Train with early stopping on val accuracy; returns the best model and its history.

    ``loss: logit_adjusted`` trains on ``logits + tau * log prior`` (Menon et al. 2021; tau = 1 is the balanced
    softmax) and predicts with the plain logits, so its argmax is the balanced rule; early stopping then uses
    val mean per-class accuracy, the quantity that loss targets.
    """
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = SASRec(len(train.behaviors), len(train.places), train.hist_behavior.shape[1], cfg).to(cfg.device)
    adjusted = cfg.loss == "logit_adjusted"
    shift = cfg.loss_tau * _train_log_prior(train, cfg.device) if adjusted else None
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best, best_state, bad, history = -1.0, None, 0, []
    t0 = time.perf_counter()
    for epoch in range(cfg.max_epochs):
        model.train()
        total = 0.0
        for b in _batches(train, cfg.batch_size, rng):
            b = b.to(cfg.device)
            logits = model(b)
            loss = nn.functional.cross_entropy(logits + shift if adjusted else logits, b.label)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(b)
        val_acc = val_score(predict_proba(model, val), val.label.numpy(), balanced=adjusted)
        history.append({"epoch": epoch + 1, "train_loss": total / len(train), "val_acc": val_acc})
        if val_acc > best:
            best, bad = val_acc, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    model.load_state_dict(best_state)
    return model, {
        "best_val_acc": best,
        "epochs": len(history),
        "seconds": time.perf_counter() - t0,
        "history": history,
    }


def search(train_f: Features, val_f: Features, base: SASRecConfig, grid: dict | None = None) -> tuple[SASRec, dict]:
    """Grid search on val accuracy; returns the best model and every trial."""
    grid = grid or DEFAULT_SASREC_GRID
    trials, best = [], (None, -1.0, None)
    for values in itertools.product(*grid.values()):
        cfg = SASRecConfig(**{**asdict(base), **dict(zip(grid, values, strict=True))})
        model, info = train(train_f, val_f, cfg)
        trials.append(
            {
                **dict(zip(grid, values, strict=True)),
                "val_acc": info["best_val_acc"],
                "epochs": info["epochs"],
                "seconds": round(info["seconds"], 2),
            }
        )
        if info["best_val_acc"] > best[1]:
            best = (model, info["best_val_acc"], cfg)
    return best[0], {"trials": trials, "best_config": asdict(best[2]), "best_val_acc": best[1]}


def write_predictions(model: SASRec, f: Features, meta_path: Path, out: Path) -> list[dict]:
    """preds.jsonl in the same format as `behaviorlm predict` (ranked over each sample's candidates)."""

    metas = read_jsonl(meta_path)
    if len(metas) != len(f):
        raise ValueError(f"{meta_path} has {len(metas)} rows but the features have {len(f)}; re-run prepare")
    rows = rows_from_class_probs(predict_proba(model, f), f.behaviors, metas, fmt="sasrec")
    atomic_write_jsonl(out, rows)
    return rows


def run_sasrec(
    data: PreparedDataset,
    out_dir: str,
    *,
    base: SASRecConfig | None = None,
    grid: dict | None = None,
    train_size: int | None = None,
    splits: tuple[str, ...] = ("test", "test_balanced"),
    subset_seed: int = 0,
) -> dict:
    """Search, train, predict and evaluate SASRec on a prepared dataset; writes into ``out_dir``."""

    train_f = load_features(data.features_path("train_all"))
    if train_size is not None and train_size < len(train_f):
        train_f = train_f.subset(
            np.sort(np.random.default_rng(subset_seed).choice(len(train_f), train_size, replace=False))
        )
    val_f = load_features(data.features_path("val"))
    model, info = search(train_f, val_f, base or SASRecConfig(), grid)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = {"search": info, "train_size": len(train_f), "metrics": {}}
    for split in splits:
        preds = out / split / "preds.jsonl"
        write_predictions(model, load_features(data.features_path(split)), data.meta_path(split), preds)
        m = evaluate_file(preds, data.stats, out / split, name=f"SASRec/{split}")
        result["metrics"][split] = {k: m.get(k) for k in SUMMARY_KEYS}
    atomic_write_json(out / "sasrec.json", result)
    torch.save({k: v.cpu() for k, v in model.state_dict().items()}, out / "sasrec.pt")
    atomic_write_json(out / "config.json", info["best_config"])
    return result
