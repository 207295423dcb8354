"""The pilot's learning curves and the gate's decision (issue 24), from the cpu-pilot suite's results.

Reads ``docs/results/cpu-main/pilot/top4/results.json`` (LoRA on the top 4 layers) and, when it exists,
``top8/results.json``; every number is on ``val_balanced`` (the pilot never reads a test split). For each size n:

* plain fine-tuning at α = 0 and at its best α (the α of the row's prior-correction curve with the highest Acc_avg),
  A-Tuning alone and the logistic regression at their best α, the hour+place rule at its best α;
* the gate: fine-tuning (n) at its best α minus hour+place at its best α, with a 95% interval from a bootstrap
  that resamples val users and picks each row's best α again inside every resample (so the choice's optimism is
  in the interval). n passes when the interval's lower end is above 0;
* fine-tuning's gain over the previous size, and (with ``top8/``) top 8 layers against top 4 at the same n and at
  twice the n, each with the same paired user-bootstrap interval; the lines in log10(n) through each curve and
  through its two largest sizes (extrapolations, printed as such).

Writes ``docs/results/cpu-main/pilot/gate.json``, ``learning_curves.png`` and ``curves.md``; prints the table.
``--canary`` instead tabulates the canary gate's set-ups (``canary/*/results.json``, from
``scripts/canary_gate.sh``) into ``canary/summary.md`` and ``canary/summary.json``. ``--stock-forward`` compares
the stock-forward check's rows (``stock-forward/results.json``: LLaMA-Factory's own forward, no answer-only head,
no frozen-layer reuse) with the same rows of ``top4/``: Acc_avg, the paired difference with its user-bootstrap
interval, the share of samples predicted alike and the training loss; into ``stock-forward/comparison.md|json``.

    .venv/bin/python scripts/pilot_gate.py
    .venv/bin/python scripts/pilot_gate.py --canary
    .venv/bin/python scripts/pilot_gate.py --stock-forward
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
from pathlib import Path

import numpy as np

from behaviorlm_plugin.eval.bootstrap import metric_weighted, resample_weights

ROOT = Path(__file__).resolve().parents[1]
PILOT = ROOT / "docs" / "results" / "cpu-main" / "pilot"
SPLIT = "val_balanced"
SIZE = re.compile(r"\((\d+)k\)$")
N_BOOT = 2000


def _acc_avg(labels: np.ndarray, codes: list[list[int]], cats: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """[A, B]: Acc_avg of each α's predictions under each resample's weights."""
    return np.stack([metric_weighted(labels, np.asarray(p) == labels, weights, cats, "acc_avg") for p in codes])


def _curve(results: dict, row: str) -> dict | None:
    rec = (results["variants"].get(row) or {}).get("per_seed", {}).get("0")
    return None if rec is None or SPLIT not in rec.get("curve", {}) else rec["curve"]


def _paired(delta: float, delta_boot: np.ndarray) -> dict:
    lo, hi = np.nanpercentile(delta_boot, [2.5, 97.5])
    return {"delta": float(delta), "ci95": [float(lo), float(hi)]}


def _two_point_crossing(n1: int, n2: int, y2: float, gain: float, target: float) -> float | None:
    """n where a line in log10(n) that gains ``gain`` from n1 to n2 (ending at y2) reaches target; None: never."""
    if y2 >= target:
        return float(n2)
    return _line([(n1, y2 - gain), (n2, y2)], target)["n_at_hour_place"]


def read(results: dict, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    ev = results["eval_samples"][SPLIT]
    labels = np.asarray(ev["labels"])
    cats = np.asarray(results["categories"])
    point = np.ones((1, len(labels)))
    boot = resample_weights(len(labels), n_boot, np.random.default_rng(seed), groups=ev["users"])
    rule = _curve(results, "hour+place")
    if rule is None:
        raise SystemExit(f"{SPLIT}: no hour+place row yet; run the pilot's refs part first")
    rule_point = _acc_avg(labels, rule[SPLIT], cats, point)[:, 0]
    rule_boot = _acc_avg(labels, rule[SPLIT], cats, boot).max(axis=0)  # its best α, chosen again per resample
    out = {"hour+place": {"best": float(rule_point.max()), "alpha": rule["alphas"][int(rule_point.argmax())]}}
    sizes: dict[int, dict] = {}
    ft_boot: dict[int, np.ndarray] = {}
    for name in results["variants"]:
        m = SIZE.search(name)
        if not m or "adjustment" in name:
            continue
        curve = _curve(results, name)
        if curve is None:
            continue
        n = int(m.group(1)) * 1000
        kind = name[: m.start()].strip()
        acc = _acc_avg(labels, curve[SPLIT], cats, point)[:, 0]
        entry = {"alpha0": float(acc[0]), "best": float(acc.max()), "alpha": curve["alphas"][int(acc.argmax())]}
        # How many samples get the row's most frequent prediction at α = 0: near all of them is a prior-only model.
        entry["top_prediction_alpha0"] = int(np.bincount(np.asarray(curve[SPLIT][0])).max())
        if kind == "fine-tuning":
            ft_boot[n] = _acc_avg(labels, curve[SPLIT], cats, boot).max(axis=0)  # best α again per resample
            delta_boot = ft_boot[n] - rule_boot
            lo, hi = np.nanpercentile(delta_boot, [2.5, 97.5])
            entry["gate"] = {
                "delta": float(acc.max() - rule_point.max()),
                "ci95": [float(lo), float(hi)],
                "passes": bool(lo > 0),
            }
        sizes.setdefault(n, {})[kind] = entry
    ns = sorted(ft_boot)
    for prev, n in itertools.pairwise(ns):  # what the larger draw adds, on the same users' resamples
        ft = sizes[n]["fine-tuning"]
        ft["vs_previous"] = _paired(ft["best"] - sizes[prev]["fine-tuning"]["best"], ft_boot[n] - ft_boot[prev])
        ft["vs_previous"]["n"] = prev
    out["sizes"] = {str(n): sizes[n] for n in sorted(sizes)}
    passing = [n for n in sorted(sizes) if sizes[n].get("fine-tuning", {}).get("gate", {}).get("passes")]
    out["gate_n"] = passing[0] if passing else None
    out["crossing"] = {kind: crossing(sizes, kind, out["hour+place"]["best"]) for kind in CROSSING_ROWS}
    last = out["crossing"]["fine-tuning"]
    if last is not None and "last_two" in last and "vs_previous" in sizes[ns[-1]]["fine-tuning"]:
        # The two-point line's crossing at the ends of its gain's interval: how little one seed's line pins down.
        lo, hi = sizes[ns[-1]]["fine-tuning"]["vs_previous"]["ci95"]
        last["last_two"]["n_range"] = [
            _two_point_crossing(ns[-2], ns[-1], sizes[ns[-1]]["fine-tuning"]["best"], g, out["hour+place"]["best"])
            for g in (hi, lo)
        ]
    out["val_users"] = len(set(ev["users"]))
    out["val_samples"] = len(labels)
    return out


CROSSING_ROWS = ("fine-tuning", "logistic regression")
CROSSING_MAX_LOG10 = 9
"""A crossing past 10^9 samples is reported as 'beyond' (a nearly flat line would give an absurd n)."""
REACH = {
    "at": "at ~{n:,.0f} samples",
    "already": "already at a size run",
    "beyond": "only beyond 10^{cap} samples",
    "never": "never (flat or falling)",
}


def _line(pts: list[tuple[int, float]], target: float) -> dict:
    """A least-squares line in log10(n) through ``pts`` and where it reaches ``target``."""
    x, y = np.log10([n for n, _ in pts]), np.asarray([acc for _, acc in pts])
    slope, icpt = np.polyfit(x, y, 1)
    out = {"per_decade": round(float(slope), 4), "n_at_hour_place": None, "reach": "never"}
    if any(acc >= target for _, acc in pts):
        out["reach"] = "already"  # a size run is there: nothing to extrapolate
    elif slope > 0:
        exponent = (target - icpt) / slope
        if exponent > CROSSING_MAX_LOG10:
            out["reach"] = "beyond"
        else:
            out["n_at_hour_place"], out["reach"] = float(round(10**exponent, -2)), "at"
    return out


def crossing(sizes: dict[int, dict], kind: str, target: float) -> dict | None:
    """Where a row's best-α curve would reach ``target`` (hour+place), by a least-squares line in log10(n) through
    the sizes run: a guide to what a larger run would need, not a measurement. None with fewer than two sizes.

    With three sizes or more, ``last_two`` is the same through the two largest only: a curve that is flat at the
    prior and then bends up is understated by one line through all of it, and overstated by its last segment, so
    both are reported."""
    pts = [(n, sizes[n][kind]["best"]) for n in sorted(sizes) if kind in sizes[n]]
    if len(pts) < 2:
        return None
    out = _line(pts, target)
    if len(pts) >= 3:
        out["last_two"] = _line(pts[-2:], target)
    return out


def layer_comparisons(by_top: dict[str, dict], n_boot: int = N_BOOT, seed: int = 0) -> list[dict]:
    """Fine-tuning at its best α, top 8 layers against top 4: at the same n, and against top 4 at twice the n (what
    more layers buy, set against what more samples buy). Users resampled, each α chosen again per resample."""
    if not {"top4", "top8"} <= set(by_top):
        return []
    r4, r8 = by_top["top4"], by_top["top8"]
    ev = r4["eval_samples"][SPLIT]
    if ev["ids"] != r8["eval_samples"][SPLIT]["ids"]:
        raise SystemExit(f"{SPLIT}: top4 and top8 scored different samples; run both on the same data and caps")
    labels, cats = np.asarray(ev["labels"]), np.asarray(r4["categories"])
    boot = resample_weights(len(labels), n_boot, np.random.default_rng(seed), groups=ev["users"])
    point = np.ones((1, len(labels)))

    def best(results: dict, n: int) -> tuple[float, np.ndarray] | None:
        curve = _curve(results, f"fine-tuning ({n // 1000}k)")
        if curve is None:
            return None
        codes = curve[SPLIT]
        return float(_acc_avg(labels, codes, cats, point)[:, 0].max()), _acc_avg(labels, codes, cats, boot).max(axis=0)

    out = []
    for n in (1000, 2000, 4000, 8000):
        eight = best(r8, n)
        for label, other in ((f"top 4, {n // 1000}k", best(r4, n)), (f"top 4, {2 * n // 1000}k", best(r4, 2 * n))):
            if eight is not None and other is not None:
                row = _paired(eight[0] - other[0], eight[1] - other[1])
                out.append({"a": f"top 8, {n // 1000}k", "b": label, **row})
    return out


def comparisons_table(rows: list[dict]) -> str:
    lines = [
        "### Fine-tuning, top 8 layers against top 4 (best α each; users resampled, α chosen again per resample)",
        "",
        "| fine-tuning | minus | difference [95% CI] |",
        "|---|---|---|",
    ]
    lines += [f"| {r['a']} | {r['b']} | {r['delta']:+.3f} [{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}] |" for r in rows]
    return "\n".join(lines)


def table(name: str, r: dict) -> str:
    lines = [
        f"### {name}: Acc_avg on {SPLIT} ({r['val_samples']} samples, {r['val_users']} users)",
        "",
        f"hour+place at its best α ({r['hour+place']['alpha']}): **{r['hour+place']['best']:.3f}**",
        "",
        "| n | fine-tuning α=0 | fine-tuning best α | gate: FT − hour+place [95% CI] | A-Tuning alone best α | "
        "logistic regression best α |",
        "|---|---|---|---|---|---|",
    ]
    for n, row in r["sizes"].items():
        ft, a, lr = row.get("fine-tuning", {}), row.get("A-Tuning alone", {}), row.get("logistic regression", {})
        g = ft.get("gate")
        gate = (
            f"{g['delta']:+.3f} [{g['ci95'][0]:+.3f}, {g['ci95'][1]:+.3f}] {'passes' if g['passes'] else 'no'}"
            if g
            else "–"
        )

        def cell(e: dict) -> str:
            return f"{e['best']:.3f} (α {e['alpha']})" if e else "–"

        lines.append(
            f"| {int(n):,} | {ft['alpha0']:.3f} | {cell(ft)} | {gate} | {cell(a)} | {cell(lr)} |"
            if ft
            else f"| {int(n):,} | – | – | – | {cell(a)} | {cell(lr)} |"
        )
    lines += ["", f"gate: smallest passing n = {r['gate_n'] if r['gate_n'] else 'none up to the sizes run'}"]
    tops = [
        f"{int(n):,}: {row['fine-tuning']['top_prediction_alpha0']}"
        for n, row in r["sizes"].items()
        if "top_prediction_alpha0" in row.get("fine-tuning", {})
    ]
    if tops:
        lines.append(
            f"fine-tuning at α = 0, samples given its most frequent prediction (of {r['val_samples']}): "
            + ", ".join(tops)
        )
    gains = [
        f"{int(n):,} − {row['fine-tuning']['vs_previous']['n']:,}: {row['fine-tuning']['vs_previous']['delta']:+.3f} "
        f"[{row['fine-tuning']['vs_previous']['ci95'][0]:+.3f}, {row['fine-tuning']['vs_previous']['ci95'][1]:+.3f}]"
        for n, row in r["sizes"].items()
        if "vs_previous" in row.get("fine-tuning", {})
    ]
    if gains:
        lines.append(
            "fine-tuning's gain over the previous size, best α each [95% CI, users resampled]: " + ", ".join(gains)
        )
    for kind, c in r.get("crossing", {}).items():
        if c is not None:
            reach = REACH[c["reach"]].format(n=c["n_at_hour_place"], cap=CROSSING_MAX_LOG10)
            lines.append(
                f"{kind}: {c['per_decade']:+.3f} Acc_avg per tenfold n over the sizes run; a log-linear line "
                f"through them reaches hour+place {reach} (an extrapolation, not a measurement)"
            )
            if "last_two" in c:
                t = c["last_two"]
                reach = REACH[t["reach"]].format(n=t["n_at_hour_place"], cap=CROSSING_MAX_LOG10)
                bends = "steeper" if t["per_decade"] > c["per_decade"] else "no steeper"
                span = ""
                if "n_range" in t:
                    ends = ["never" if x is None else f"~{x:,.0f}" for x in t["n_range"]]
                    span = f"; at the ends of the last gain's interval: {ends[0]} to {ends[1]}"
                lines.append(
                    f"{kind}, the two largest sizes only ({bends} than the line through all): {t['per_decade']:+.3f} "
                    f"per tenfold n; that line reaches hour+place {reach}{span} (an extrapolation)"
                )
    return "\n".join(lines)


def plot(reads: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = {"top4": "-", "top8": "--"}
    for name, r in reads.items():
        ns = [int(n) for n in r["sizes"]]
        for kind, key, color in (
            ("fine-tuning", "alpha0", "tab:gray"),
            ("fine-tuning", "best", "tab:blue"),
            ("A-Tuning alone", "best", "tab:orange"),
            ("logistic regression", "best", "tab:green"),
        ):
            xs = [n for n in ns if kind in r["sizes"][str(n)]]
            ys = [r["sizes"][str(n)][kind][key] for n in xs]
            if xs:
                label = f"{kind} ({'α 0' if key == 'alpha0' else 'best α'}), {name}"
                ax.plot(xs, ys, styles.get(name, ":"), marker="o", color=color, label=label)
        ax.axhline(r["hour+place"]["best"], color="black", lw=1, ls=styles.get(name, ":"), label=f"hour+place, {name}")
    ax.set_xscale("log")
    ax.set_xlabel("training samples n")
    ax.set_ylabel(f"Acc_avg on {SPLIT}")
    ax.set_title("Pilot learning curves (SmolLM2-135M, CPU)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


BUDGET = re.compile(r"-(\d+)x(\d+)$")
CANARY_EPOCHS = 3
"""canary.yaml's epochs: a set-up without a budget suffix trains 960 samples for 3 epochs."""
CANARY_PASS = 0.95
"""The canary gate: at least this accuracy on the canary's test ..."""
CANARY_BUDGET = 2000
"""... within this many training samples seen (distinct samples x epochs)."""


def canary_rows(folder: Path) -> list[dict]:
    """One row per canary set-up folder: its budget, the fine-tuning row's test and test_balanced figures."""
    rows = []
    for f in sorted(folder.glob("*/results.json")):
        r = json.loads(f.read_text())
        ft = next((n for n in r["variants"] if n.startswith("fine-tuning")), None)
        if ft is None:
            continue
        seed = r["variants"][ft]["per_seed"]["0"]
        epochs = r.get("training", {}).get("overrides", {}).get("a_tuning", {}).get("num_train_epochs")
        if epochs is None:  # results written before they recorded it: the set-up's name says (canary_gate.sh)
            m = BUDGET.search(f.parent.name)
            epochs = int(m.group(2)) if m else CANARY_EPOCHS
        train_s = sum(st["seconds"] for st in seed["steps"] if st["kind"] == "train")
        rows.append(
            {
                "set-up": f.parent.name,
                "samples": seed["train_samples"],
                "epochs": epochs,
                "seen": seed["train_samples"] * epochs if epochs else None,
                "test_accuracy": seed["metrics"]["test"]["weighted_recall"],
                "test_balanced_acc_avg": seed["metrics"]["test_balanced"]["acc_avg"],
                "zero_shot_test_accuracy": r["variants"]
                .get("zero-shot", {})
                .get("per_seed", {})
                .get("0", {})
                .get("metrics", {})
                .get("test", {})
                .get("weighted_recall"),
                "train_seconds": round(train_s, 1),
            }
        )
    for row in rows:
        row["passes"] = bool(
            row["test_accuracy"] >= CANARY_PASS and row["seen"] is not None and row["seen"] <= CANARY_BUDGET
        )
    return rows


def canary_table(rows: list[dict]) -> str:
    lines = [
        "| set-up | samples × epochs (seen) | test accuracy | test_balanced Acc_avg | zero-shot test | training s* | "
        f"gate (≥ {CANARY_PASS:.2f} within {CANARY_BUDGET:,} seen) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        zs = "–" if r["zero_shot_test_accuracy"] is None else f"{r['zero_shot_test_accuracy']:.3f}"
        gate = "passes" if r["passes"] else ("below the bar" if r["test_accuracy"] < CANARY_PASS else "over budget")
        lines.append(
            f"| {r['set-up']} | {r['samples']:,} × {r['epochs']} ({r['seen']:,}) | {r['test_accuracy']:.3f} | "
            f"{r['test_balanced_acc_avg']:.3f} | {zs} | {r['train_seconds']:.0f} | {gate} |"
        )
    return "\n".join(lines)


def stock_forward_rows(stock: dict, usual: dict, n_boot: int = N_BOOT, seed: int = 0) -> list[dict]:
    """Each trained row of the stock-forward run beside the same row of the usual (reuse) run, on ``val_balanced``."""
    if not stock.get("training", {}).get("stock_forward"):
        raise SystemExit(
            "stock-forward/results.json: training.stock_forward is not true; rerun it with --set stock_forward=true"
        )
    if usual.get("training", {}).get("stock_forward"):
        raise SystemExit("top4/results.json: training.stock_forward is true; top4/ is the reuse run, without the flag")
    ev, other = stock["eval_samples"][SPLIT], usual["eval_samples"][SPLIT]
    if ev["ids"] != other["ids"]:
        raise SystemExit(f"{SPLIT}: the two runs scored different samples; run both on the same data and caps")
    labels, cats = np.asarray(ev["labels"]), np.asarray(stock["categories"])
    point = np.ones((1, len(labels)))
    boot = resample_weights(len(labels), n_boot, np.random.default_rng(seed), groups=ev["users"])
    rows = []
    for name, v in stock["variants"].items():
        mine, theirs = _curve(stock, name), _curve(usual, name)
        if v["kind"] in ("hour_place", "zero_shot", "logreg") or mine is None or theirs is None:
            continue
        a, b = mine[SPLIT], theirs[SPLIT]
        acc_a, acc_b = _acc_avg(labels, a, cats, point)[:, 0], _acc_avg(labels, b, cats, point)[:, 0]
        delta = _acc_avg(labels, a, cats, boot).max(axis=0) - _acc_avg(labels, b, cats, boot).max(axis=0)
        lo, hi = np.nanpercentile(delta, [2.5, 97.5])
        loss = [r["variants"][name]["per_seed"]["0"].get("loss") or [None] for r in (stock, usual)]
        rows.append(
            {
                "row": name,
                "stock": {"alpha0": float(acc_a[0]), "best": float(acc_a.max())},
                "reuse": {"alpha0": float(acc_b[0]), "best": float(acc_b.max())},
                "delta_best": float(acc_a.max() - acc_b.max()),
                "ci95": [float(lo), float(hi)],
                "agreement_alpha0": float(np.mean(np.asarray(a[0]) == np.asarray(b[0]))),
                "agreement_every_alpha": float(np.mean(np.asarray(a) == np.asarray(b))),
                "loss_last": [stage[-1]["last"] if stage[-1] else None for stage in loss],
                "no_detectable_difference": bool(lo <= 0 <= hi),
            }
        )
    return rows


def stock_forward_table(rows: list[dict]) -> str:
    lines = [
        "| row | Acc_avg α=0: stock / reuse | best α: stock / reuse | stock − reuse [95% CI] | same prediction "
        "(α=0 / every α) | last loss: stock / reuse | difference detected |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        loss = " / ".join("–" if x is None else f"{x:.3f}" for x in r["loss_last"])
        lines.append(
            f"| {r['row']} | {r['stock']['alpha0']:.3f} / {r['reuse']['alpha0']:.3f} | {r['stock']['best']:.3f} / "
            f"{r['reuse']['best']:.3f} | {r['delta_best']:+.3f} [{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}] | "
            f"{r['agreement_alpha0']:.3f} / {r['agreement_every_alpha']:.3f} | {loss} | "
            f"{'no' if r['no_detectable_difference'] else 'yes'} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pilot", default=str(PILOT))
    p.add_argument("--canary", action="store_true", help="tabulate the canary gate's set-ups instead")
    p.add_argument("--stock-forward", action="store_true", help="compare the stock-forward check with top4/")
    a = p.parse_args()
    pilot = Path(a.pilot)
    if a.stock_forward:
        files = [pilot / "stock-forward" / "results.json", pilot / "top4" / "results.json"]
        for f in files:
            if not f.is_file():
                raise SystemExit(f"{f}: not there yet (docs/results/cpu-main/pilot/README.md has the command)")
        rows = stock_forward_rows(*(json.loads(f.read_text()) for f in files))
        if not rows:
            raise SystemExit(f"{files[0]}: no trained row that {files[1]} also has")
        text = stock_forward_table(rows)
        print(text)
        (pilot / "stock-forward" / "comparison.md").write_text(text + "\n")
        (pilot / "stock-forward" / "comparison.json").write_text(json.dumps(rows, indent=2) + "\n")
        return
    if a.canary:
        rows = canary_rows(pilot / "canary")
        text = canary_table(rows)
        print(text)
        (pilot / "canary" / "summary.md").write_text(text + "\n")
        (pilot / "canary" / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")
        return
    raw = {}
    for name in ("top4", "top8"):
        f = pilot / name / "results.json"
        if f.is_file():
            raw[name] = json.loads(f.read_text())
    reads = {name: read(r) for name, r in raw.items()}
    if not reads:
        raise SystemExit(
            f"{pilot}: no pilot results yet (behaviorlm bench yaml_recipes/bench/cpu-pilot.yaml --part next)"
        )
    text = "\n\n".join(table(n, r) for n, r in reads.items())
    layers = layer_comparisons(raw)
    if layers:
        text += "\n\n" + comparisons_table(layers)
    print(text)
    (pilot / "gate.json").write_text(json.dumps({**reads, "layers": layers}, indent=2) + "\n")
    (pilot / "curves.md").write_text(text + "\n")
    plot(reads, pilot / "learning_curves.png")


if __name__ == "__main__":
    main()
