"""What lets a suite's report tell a win: the evaluation samples, the oracle frontier, and the paired
bootstrap of every row against ``ours`` (computed from ``results.json`` alone, so merged parts get it too)."""

from __future__ import annotations

from behaviorlm_plugin.eval.bootstrap import ci_verdict, paired_bootstrap
from behaviorlm_plugin.eval.curves import holm, matched_head_delta
from behaviorlm_plugin.runs.bench.context import BenchContext
from behaviorlm_plugin.runs.bench.model_free import frontier, oracle_step

CI_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("wR", "test", "accuracy"),
    ("Acc_avg", "test_balanced", "acc_avg"),
    ("head", "test_balanced", "acc_head"),
    ("medium", "test_balanced", "acc_medium"),
    ("tail", "test_balanced", "acc_tail"),
)
"""(report column, split, bootstrap metric): weighted recall is plain accuracy on the natural split."""


def collect_evidence(ctx: BenchContext, results: dict) -> dict:
    """The evaluation samples (ids, label codes), the behavior codes and categories, and the oracle frontier."""
    stats = ctx.data.stats
    out = {
        "behaviors": stats.behavior_list,
        "categories": [stats.head_medium_tail[b] for b in stats.behavior_list],
        "eval_samples": ctx.eval_samples,
    }
    oracle_rows = [v for v in ctx.suite.variants if v.kind == "oracle" and v.name in results]
    if oracle_rows:
        out["oracle_frontier"] = frontier(ctx, oracle_step(ctx))
    return out


def _split_of(results: dict, split: str) -> str | None:
    """The split a column is read from: its own, when it was scored (never another split in its place)."""
    return split if split in (results.get("eval_samples") or {}) else None


def bootstrap_table(results: dict, *, n_boot: int = 1000) -> dict:
    """``{row: {column: {delta, ci95, verdict}}}``: each row minus ``ours``, paired over the evaluation samples,
    resampling users (when the results record them) and seeds (:func:`~behaviorlm_plugin.eval.bootstrap.
    paired_bootstrap`)."""
    variants, ours = results.get("variants", {}), results.get("ours")
    if ours not in variants or "eval_samples" not in results:
        return {}
    table = {}
    for name in variants:
        if name == ours:
            continue
        cells = {col: bootstrap_cell(results, name, col, n_boot=n_boot) for col, _, _ in CI_COLUMNS}
        table[name] = {col: cell for col, cell in cells.items() if cell is not None}
    return table


def bootstrap_cell(results: dict, name: str, col: str, *, n_boot: int = 1000) -> dict | None:
    """Row ``name`` minus ``ours`` on one report column (:data:`CI_COLUMNS`), or None when its split is missing."""
    want, metric = next((w, m) for c, w, m in CI_COLUMNS if c == col)
    variants, split = results["variants"], _split_of(results, want)
    a = [r["predictions"][split] for r in variants[name]["per_seed"].values() if split in r.get("predictions", {})]
    b = [r["predictions"][split] for r in variants[results["ours"]]["per_seed"].values()
         if split in r.get("predictions", {})]  # fmt: skip
    if not split or not a or not b:
        return None
    samples = results["eval_samples"][split]
    # Users and seeds resampled (windows cluster by user); results from before users were recorded: windows.
    res = paired_bootstrap(
        samples["labels"], a, b, results["categories"], metric, n_boot=n_boot, groups=samples.get("users"),
        resample_seeds=True,
    )  # fmt: skip
    return {**res, "verdict": ci_verdict(res)}


def oracle_best_point(results: dict) -> dict | None:
    """The oracle frontier's point at the alpha with the best val Acc_avg (the ceiling a row's Acc_avg is read
    against). Results without val on the frontier (written before it was recorded, or a suite that scores no
    val) fall back to the best test Acc_avg, which over-states the ceiling a little: the report says which."""
    pts = [p for p in results.get("oracle_frontier") or [] if p.get("Acc_avg") is not None]
    if not pts:
        return None
    on_val = [p for p in pts if p.get("val_Acc_avg") is not None]
    if on_val:
        return max(on_val, key=lambda p: (p["val_Acc_avg"], -p["alpha"]))
    return max(pts, key=lambda p: (p["Acc_avg"], -p["alpha"]))


def oracle_best(results: dict, col: str = "Acc_avg") -> float | None:
    """``col`` at :func:`oracle_best_point`."""
    best = oracle_best_point(results)
    return None if best is None else best.get(col)


def class_counts(results: dict, split: str = "test_balanced") -> dict[str, dict[str, int]]:
    """Per category: classes with samples and samples, on the split the class means come from."""
    samples = (results.get("eval_samples") or {}).get(split)
    if not samples:
        return {}
    cats = results["categories"]
    out: dict[str, dict[str, int]] = {}
    seen: dict[str, set] = {}
    for y in samples["labels"]:
        c = cats[y]
        out.setdefault(c, {"classes": 0, "samples": 0})["samples"] += 1
        seen.setdefault(c, set()).add(y)
    for c, s in seen.items():
        out[c]["classes"] = len(s)
    return out


def primary_table(results: dict, *, n_boot: int = 1000) -> dict:
    """The pre-registered comparisons (``results["primary"]``) with their intervals, p-values and Holm-adjusted
    verdicts: ``{"<row> / <measure>": {delta, ci95, p, p_holm, verdict}}``."""
    variants, ours = results.get("variants", {}), results.get("ours")
    rows: dict[str, dict] = {}
    for p in results.get("primary") or []:
        key = f"{p['row']} / {p['measure']}"
        if p["row"] not in variants or ours not in variants:
            rows[key] = {"delta": None, "ci95": None, "p": None, "note": "not run yet"}
            continue
        if p["measure"] == "tail_at_matched_head":
            res = matched_head_delta(results, p["row"], val=p["val"], n_boot=n_boot)
        else:
            res = bootstrap_cell(results, p["row"], "Acc_avg", n_boot=n_boot) if "eval_samples" in results else None
        rows[key] = res or {"delta": None, "ci95": None, "p": None, "note": "no curve or split for it"}
    adjusted = holm({k: r.get("p") for k, r in rows.items()})
    for k, r in rows.items():
        a = adjusted[k]
        if a["p_holm"] is None:
            verdict = "n/a"
        elif a["reject"]:
            verdict = "ours better" if r["delta"] < 0 else "ours worse"
        else:
            verdict = "no difference shown"
        rows[k] = {**r, "p_holm": a["p_holm"], "verdict": verdict}
    return rows
