"""The clairvoyant oracle of the synthetic data: the simulator's true next-behavior distribution per window.

For every window ``prepare --synthetic`` writes, the simulator knows the exact distribution the target
event was drawn from (persona, personal taste, context, previous behaviors, a pending parcel). No model
can reach it (it sees the hidden persona and taste a model only glimpses through 20 events), so it is a
ceiling, and its prior-corrected variants trace the head/tail frontier of the data (``docs/evaluation.md``).
For the canary (``prepare --synthetic canary``, ``data/canary.py``) the distribution is one-hot on the rule's
behavior: its oracle is right on every window (the rule *is* the data).

Files: ``<split>.oracle.npz`` beside ``<split>.features.npz``, line-aligned with the split's ``.meta.jsonl``:
``ids`` (the meta ids), ``probs`` (float32 ``[n, n_behaviors]``) and ``behaviors`` (the column names, in the
prepared dataset's behavior order, the same as the features file's).

Command (the oracle table of the default synthetic data, every window with a full history)::

    python -m behaviorlm_plugin.data.oracle [--users 2000] [--days 60] [--seed 0] [--json F] [--plot F.png]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from behaviorlm_plugin.data.canary import canary_with_truth
from behaviorlm_plugin.data.samples import EncodedEvents, encode_events, frequency_categories, window_targets
from behaviorlm_plugin.data.simulator import BEHAVIORS, SimulatorConfig, simulate_with_truth
from behaviorlm_plugin.extras.constants import (
    EVAL_SPLITS,
    HISTORY_LEN,
    SYNTHETIC_CANARY,
    SYNTHETIC_DAYS,
    SYNTHETIC_USERS,
)
from behaviorlm_plugin.hparams.data_args import CanaryRule

ORACLE_SUFFIX = ".oracle.npz"
ORACLE_SPLITS = EVAL_SPLITS
"""Splits that get an oracle file (the evaluation splits; training never sees the oracle)."""
TABLE_ALPHAS = (0.0, 0.5, 1.0)


class OracleError(ValueError):
    """The oracle cannot be aligned with the prepared events; the message says which and why."""


def _event_keys(users: np.ndarray, timestamps: np.ndarray) -> pd.DataFrame:
    """(user, time, rank among same-instant events of the user): one key per event of a log sorted by user, time."""
    frame = pd.DataFrame({"user": users, "ts": timestamps.astype("datetime64[ns]").astype(np.int64)})
    frame["occ"] = frame.groupby(["user", "ts"], sort=False).cumcount()
    return frame


def truth_for_events(
    enc: EncodedEvents, cfg: SimulatorConfig, events: np.ndarray, canary_rule: CanaryRule | None = None
) -> np.ndarray:
    """The true distribution of each event ``events`` (indices into ``enc``), columns in ``enc.behaviors`` order.

    Re-runs the (deterministic) simulator with recording on (or, with ``canary_rule``, the canary: one-hot on
    the rule's behavior) and matches events by user, time and rank within an instant; every matched event
    must carry the same behavior, or this raises.
    """
    df, probs = canary_with_truth(cfg, canary_rule) if canary_rule else simulate_with_truth(cfg)
    sim = _event_keys(df["user_id"].astype(str).to_numpy(), df["timestamp"].to_numpy())
    sim["row"] = np.arange(len(sim))
    mine = _event_keys(np.asarray(enc.users, dtype=object)[enc.user], enc.timestamp).iloc[events]
    mine = mine.assign(pos=np.arange(len(events)))
    merged = mine.merge(sim, on=["user", "ts", "occ"], how="left", validate="many_to_one")
    if merged["row"].isna().any():
        raise OracleError(
            f"{int(merged['row'].isna().sum())} prepared events are not in the simulator's log for {cfg}; "
            "the oracle needs the events exactly as `prepare --synthetic` simulated them"
        )
    rows = merged.sort_values("pos")["row"].to_numpy(np.int64)
    sim_labels = np.asarray(df["behavior"].astype(str).to_numpy())[rows]
    mine_labels = np.asarray(enc.behaviors, dtype=object)[enc.behavior[events]]
    bad = int((sim_labels != mine_labels).sum())
    if bad:
        raise OracleError(f"{bad} prepared events carry another behavior than the simulator drew; cannot align")
    column = [BEHAVIORS.index(b) for b in enc.behaviors]
    return probs[rows][:, column]


def write_oracle(base: Path, windows, rows: dict, args) -> None:
    """``<split>.oracle.npz`` for every evaluation split of a synthetic dataset (the ``prepare`` hook); a canary's
    is one-hot on its rule's behavior."""
    cfg = SimulatorConfig(num_users=args.synthetic_users, num_days=args.synthetic_days, seed=args.seed)
    splits = [s for s in ORACLE_SPLITS if s in windows.chosen]
    events = np.concatenate([windows.chosen[s] for s in splits])
    rule = args.canary_rule if args.synthetic == SYNTHETIC_CANARY else None
    truth = truth_for_events(windows.enc, cfg, events, canary_rule=rule)
    start = 0
    for split in splits:
        n = len(windows.chosen[split])
        ids = np.array([m["id"] for m in rows[split][1]])
        path = base / f"{split}{ORACLE_SUFFIX}"
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez_compressed(tmp, ids=ids, probs=truth[start : start + n], behaviors=np.array(windows.enc.behaviors))
        tmp.replace(path)
        start += n


def read_oracle(path: str | Path) -> tuple[dict[str, int], np.ndarray, list[str]]:
    """(id -> row, probs, behaviors) of an oracle file, or a clear error when the dataset has none."""
    path = Path(path)
    if not path.is_file():
        raise OracleError(
            f"{path}: no oracle file; only `prepare --synthetic` writes one (re-prepare the synthetic data with "
            "this version: set prepare.overwrite: true)"
        )
    with np.load(path) as z:
        ids, probs, behaviors = z["ids"], z["probs"], [str(b) for b in z["behaviors"]]
    return {str(i): n for n, i in enumerate(ids)}, probs, behaviors


# ----------------------------------------------------------------------------- the oracle table
def rule_scores(
    probs: np.ndarray, labels: np.ndarray, log_prior: np.ndarray, alpha: float, categories: Sequence[str]
) -> dict:
    """Natural accuracy and class means of ``argmax log p - alpha * log prior`` over all given windows."""
    pred = np.argmax(np.log(np.maximum(probs, 1e-30)) - alpha * log_prior, axis=1)
    ok = pred == labels
    n_cls = probs.shape[1]
    support = np.bincount(labels, minlength=n_cls)
    recall = np.bincount(labels, weights=ok, minlength=n_cls) / np.maximum(support, 1)
    seen = support > 0
    out = {"alpha": alpha, "natural_accuracy": float(ok.mean()), "acc_avg": float(recall[seen].mean())}
    for cat in ("head", "medium", "tail"):
        mask = seen & (np.asarray(categories) == cat)
        out[cat] = float(recall[mask].mean()) if mask.any() else None
    return out


FRONTIER_ALPHAS = tuple(round(0.05 * i, 2) for i in range(25))


def oracle_table(cfg: SimulatorConfig, history_len: int = HISTORY_LEN, alphas=TABLE_ALPHAS) -> dict:
    """The oracle (and majority-class) rows over every window with a full history of a fresh population.

    Prior and head/medium/tail categories come from the same windows' labels (thresholds 5 % / 1 %).
    """
    df, probs = simulate_with_truth(cfg)
    enc = encode_events(df)
    targets = window_targets(enc.user, history_len)
    column = [BEHAVIORS.index(b) for b in enc.behaviors]
    p, y = probs[targets][:, column], enc.behavior[targets]
    cats = frequency_categories(y, enc.behaviors)
    freq = np.array([cats.frequency[b] for b in enc.behaviors])
    log_prior = np.log(np.maximum(freq, 1e-7))
    categories = [cats.head_medium_tail[b] for b in enc.behaviors]
    majority = np.zeros_like(p)
    majority[:, int(np.argmax(freq))] = 1.0
    rows = {"majority class": rule_scores(majority, y, log_prior, 0.0, categories)}
    for a in alphas:
        rows[f"oracle, alpha={a:g}"] = rule_scores(p, y, log_prior, a, categories)
    frontier = [rule_scores(p, y, log_prior, a, categories) for a in FRONTIER_ALPHAS]
    config = {"users": cfg.num_users, "days": cfg.num_days, "seed": cfg.seed}
    return {"config": config, "windows": len(y), "rows": rows, "frontier": frontier}


def plot_frontier(frontier: list[dict], path: str | Path) -> None:
    """Head against tail accuracy of the oracle as alpha goes 0 -> 1.2 (the picture of docs/evaluation.md)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    ax.plot([f["head"] for f in frontier], [f["tail"] for f in frontier], "-o", markersize=3, label="oracle")
    for f in frontier:
        if f["alpha"] in (0.0, 0.5, 1.0):
            ax.annotate(f"α={f['alpha']:g}", (f["head"], f["tail"]), xytext=(5, 0), textcoords="offset points")
    ax.set_xlabel("head accuracy")
    ax.set_ylabel("tail accuracy")
    ax.set_title("The oracle frontier: argmax p(b | state) / prior(b)^α")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="The oracle table of the synthetic data (every full-history window).")
    ap.add_argument("--users", type=int, default=SYNTHETIC_USERS)
    ap.add_argument("--days", type=int, default=SYNTHETIC_DAYS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="Also write the table here.")
    ap.add_argument("--plot", help="Also draw the frontier (head vs tail, alpha 0..1.2) into this PNG.")
    a = ap.parse_args(argv)
    table = oracle_table(SimulatorConfig(num_users=a.users, num_days=a.days, seed=a.seed))
    print(f"{table['windows']} windows ({a.users} users, {a.days} days, seed {a.seed})")
    print("| decision rule | natural accuracy | Acc_avg | head | medium | tail |\n|---|---|---|---|---|---|")
    for name, r in table["rows"].items():
        cells = [r["natural_accuracy"], r["acc_avg"], r["head"], r["medium"], r["tail"]]
        print(f"| {name} | " + " | ".join("n/a" if c is None else f"{c:.3f}" for c in cells) + " |")
    if a.json:
        Path(a.json).write_text(json.dumps(table, indent=2) + "\n")
    if a.plot:
        plot_frontier(table["frontier"], a.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
