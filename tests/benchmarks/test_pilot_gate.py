"""scripts/pilot_gate.py: the gate passes a size whose fine-tuning beats hour+place beyond the user bootstrap's
interval, and no size where it does not; the files it writes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _gate():
    spec = importlib.util.spec_from_file_location("pilot_gate", ROOT / "scripts" / "pilot_gate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _results(rng: np.random.Generator) -> dict:
    """Six behaviors (2 head, 2 medium, 2 tail), 20 val users of 6 samples each."""
    labels = np.tile(np.arange(6), 20)
    users = np.repeat(np.arange(20), 6).tolist()
    alphas = [0.0, 0.5, 1.0]

    def curve(correct_rate: float) -> dict:
        codes = []
        for _ in alphas:
            hit = rng.random(len(labels)) < correct_rate
            codes.append(np.where(hit, labels, (labels + 1) % 6).tolist())
        return {"alphas": alphas, "val_balanced": codes}

    def row(correct_rate: float) -> dict:
        return {"per_seed": {"0": {"curve": curve(correct_rate)}}}

    return {
        "categories": ["head", "head", "medium", "medium", "tail", "tail"],
        "eval_samples": {"val_balanced": {"labels": labels.tolist(), "users": users, "ids": list(range(120))}},
        "variants": {
            "hour+place": row(0.3),
            "fine-tuning (1k)": row(0.32),  # within noise of the rule
            "fine-tuning (1k) + adjustment": row(0.99),  # never read: the gate reads the plain row's curve
            "A-Tuning alone (1k)": row(0.2),
            "fine-tuning (2k)": row(0.9),  # far above it
            "logistic regression (2k)": row(0.5),
        },
    }


def test_the_gate_picks_the_smallest_size_clearly_above_hour_place(tmp_path):
    gate = _gate()
    r = gate.read(_results(np.random.default_rng(0)), n_boot=500)
    small, large = r["sizes"]["1000"]["fine-tuning"]["gate"], r["sizes"]["2000"]["fine-tuning"]["gate"]
    assert not small["passes"] and small["ci95"][0] < 0 < small["ci95"][1]
    assert large["passes"] and large["ci95"][0] > 0.3
    assert r["gate_n"] == 2000 and "A-Tuning alone" in r["sizes"]["1000"]
    # 0.9 right on 120 samples of 6 labels: no label holds more than its 20 plus a few misses shifted onto it.
    assert 20 <= r["sizes"]["2000"]["fine-tuning"]["top_prediction_alpha0"] <= 30
    assert "logistic regression" in r["sizes"]["2000"] and r["val_users"] == 20
    gain = r["sizes"]["2000"]["fine-tuning"]["vs_previous"]  # 0.32 -> 0.9 right: a gain well outside noise
    assert gain["n"] == 1000 and gain["ci95"][0] > 0.3 and "vs_previous" not in r["sizes"]["1000"]["fine-tuning"]

    pilot = tmp_path / "pilot"
    (pilot / "top4").mkdir(parents=True)
    (pilot / "top4" / "results.json").write_text(json.dumps(_results(np.random.default_rng(0))))
    import sys

    argv, sys.argv = sys.argv, ["pilot_gate.py", "--pilot", str(pilot)]
    try:
        gate.main()
    finally:
        sys.argv = argv
    saved = json.loads((pilot / "gate.json").read_text())
    assert saved["top4"]["gate_n"] == 2000
    assert "smallest passing n = 2000" in (pilot / "curves.md").read_text()
    assert (pilot / "learning_curves.png").stat().st_size > 1000


def _power():
    spec = importlib.util.spec_from_file_location("power", ROOT / "scripts" / "power.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _paired(users_per: int) -> dict:
    """Four tail behaviors of 50 samples each: fine-tuning right on 30%, A-Tuning alone on 20%, independently;
    ``users_per`` samples share a user (and, when > 1, the same outcome: clustered)."""
    rng = np.random.default_rng(3)
    n = 200
    labels = np.repeat(np.arange(4), 50)
    users = np.arange(n) // users_per
    ft_hit = (rng.random(n // users_per) < 0.3)[users]
    at_hit = (rng.random(n // users_per) < 0.2)[users]

    def row(hit):
        codes = np.where(hit, labels, (labels + 1) % 4).tolist()
        return {"per_seed": {"0": {"curve": {"alphas": [0.0], "val_balanced": [codes]}}}}

    return {
        "categories": ["tail"] * 4,
        "eval_samples": {"val_balanced": {"labels": labels.tolist(), "users": users.tolist()}},
        "variants": {"fine-tuning (2k)": row(ft_hit), "A-Tuning alone (2k)": row(at_hit)},
    }


def test_the_power_calculation_follows_the_paired_formula_and_widens_with_user_clusters():
    power = _power()
    kw = {"delta": 0.05, "alpha": 0.05, "beta": 0.2, "k": 1, "tail_samples": 400}
    iid = power.power(_paired(1), 2000, **kw)
    z = 1.959964 + 0.841621
    var1 = iid["p10_only_fine_tuning_right"] + iid["p01_only_a_tuning_right"] - iid["pilot_tail_difference"] ** 2
    assert abs(iid["design_effect_users"] - 1.0) < 0.25  # one sample a user: no clustering
    expected = iid["design_effect_users"] * var1 * z**2 / 0.05**2
    assert abs(iid["tail_samples_needed"] - expected) <= 1
    assert abs(iid["minimum_detectable_effect"] - z * (iid["design_effect_users"] * var1 / 400) ** 0.5) < 1e-5
    clustered = power.power(_paired(5), 2000, **kw)
    assert clustered["design_effect_users"] > 2.5 and clustered["tail_samples_needed"] > 2 * iid["tail_samples_needed"]
    holm = power.power(_paired(1), 2000, **{**kw, "k": 6})
    assert holm["tail_samples_needed"] > iid["tail_samples_needed"]


def test_the_canary_table_counts_samples_seen_against_the_budget(tmp_path):
    gate = _gate()

    def write(name: str, n: int, acc: float, epochs: int | None) -> None:
        seed = {
            "train_samples": n,
            "metrics": {"test": {"weighted_recall": acc}, "test_balanced": {"acc_avg": acc}},
            "steps": [{"kind": "train", "seconds": 10.0}],
        }
        res = {"variants": {f"fine-tuning ({n})": {"per_seed": {"0": seed}}}}
        if epochs is not None:
            res["training"] = {"overrides": {"a_tuning": {"num_train_epochs": epochs}}}
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(res))

    write("a-1920x1", 1920, 1.0, None)  # the epochs from the name
    write("b", 960, 1.0, None)  # no suffix: canary.yaml's 3 epochs, 2,880 seen
    write("c", 480, 0.9, 3)
    rows = {r["set-up"]: r for r in gate.canary_rows(tmp_path)}
    assert rows["a-1920x1"]["seen"] == 1920 and rows["a-1920x1"]["passes"]
    assert rows["b"]["seen"] == 2880 and not rows["b"]["passes"]
    assert rows["c"]["seen"] == 1440 and not rows["c"]["passes"]
    table = gate.canary_table(list(rows.values()))
    assert "over budget" in table and "below the bar" in table


def test_the_stock_forward_check_calls_equal_rows_the_same_and_a_broken_one_different():
    gate = _gate()
    usual = _results(np.random.default_rng(0))
    for name, v in usual["variants"].items():
        v["kind"] = "hour_place" if name == "hour+place" else "full_ft"
    usual["training"] = {"stock_forward": False}
    stock = json.loads(json.dumps(usual))
    stock["training"] = {"stock_forward": True}
    # A masking bug would show as a row that no longer learns: every prediction shifted off its label.
    labels = np.asarray(stock["eval_samples"]["val_balanced"]["labels"])
    broken = ((labels + 1) % 6).tolist()
    stock["variants"]["fine-tuning (2k)"]["per_seed"]["0"]["curve"]["val_balanced"] = [broken] * 3
    rows = {r["row"]: r for r in gate.stock_forward_rows(stock, usual, n_boot=300)}
    assert "hour+place" not in rows
    same = rows["fine-tuning (1k)"]
    assert same["no_detectable_difference"] and same["agreement_alpha0"] == 1.0 and same["delta_best"] == 0.0
    assert same["agreement_every_alpha"] == 1.0
    off = rows["fine-tuning (2k)"]
    assert not off["no_detectable_difference"] and off["agreement_alpha0"] < 0.2 and off["ci95"][1] < 0
    assert "| fine-tuning (2k) |" in gate.stock_forward_table(list(rows.values()))


def test_the_crossing_extrapolates_a_log_linear_curve_to_hour_place():
    gate = _gate()
    sizes = {1000: {"fine-tuning": {"best": 0.10}}, 10000: {"fine-tuning": {"best": 0.20}}}
    c = gate.crossing(sizes, "fine-tuning", 0.30)
    assert c == {"per_decade": 0.1, "n_at_hour_place": 100000.0, "reach": "at"}
    assert gate.crossing(sizes, "fine-tuning", 0.15)["reach"] == "already"  # 10k is past it: no extrapolation
    creeping = {1000: {"fine-tuning": {"best": 0.1}}, 2000: {"fine-tuning": {"best": 0.1 + 1e-9}}}
    c = gate.crossing(creeping, "fine-tuning", 0.3)
    assert c["reach"] == "beyond" and c["n_at_hour_place"] is None
    json.dumps(c, allow_nan=False)  # never an infinite n in gate.json
    flat = {1000: {"fine-tuning": {"best": 0.1}}, 2000: {"fine-tuning": {"best": 0.09}}}
    assert gate.crossing(flat, "fine-tuning", 0.3)["reach"] == "never"
    assert gate.crossing({1000: {"fine-tuning": {"best": 0.1}}}, "fine-tuning", 0.3) is None
    bends = {n: {"fine-tuning": {"best": b}} for n, b in [(1000, 0.05), (2000, 0.05), (4000, 0.05), (8000, 0.11)]}
    c = gate.crossing(bends, "fine-tuning", 0.31)
    assert c["last_two"]["reach"] == "at" and c["last_two"]["n_at_hour_place"] < c["n_at_hour_place"]
    assert abs(c["last_two"]["per_decade"] - 0.06 / np.log10(2)) < 1e-3  # the last doubling's slope
    assert "last_two" not in gate.crossing(sizes, "fine-tuning", 0.3)  # two sizes: one line already


def test_the_stock_forward_check_refuses_runs_in_the_wrong_order():
    gate = _gate()
    usual = _results(np.random.default_rng(0))
    usual["training"] = {"stock_forward": False}
    with pytest.raises(SystemExit, match="--set stock_forward=true"):
        gate.stock_forward_rows(usual, usual)


def test_the_two_point_crossing_follows_the_gain_and_refuses_none():
    gate = _gate()
    # 0.1 at 1k -> 0.2 at 10k: +0.1 a decade reaches 0.3 at 100k; half the gain needs two more decades.
    assert gate._two_point_crossing(1000, 10000, 0.2, 0.1, 0.3) == 100000.0
    assert gate._two_point_crossing(1000, 10000, 0.2, 0.05, 0.3) == 1000000.0
    assert gate._two_point_crossing(1000, 10000, 0.2, 0.0, 0.3) is None  # no gain: never
    assert gate._two_point_crossing(1000, 10000, 0.2, 1e-9, 0.3) is None  # past the cap: not an infinite n
    assert gate._two_point_crossing(1000, 10000, 0.35, 0.1, 0.3) == 10000.0  # already there


def test_more_layers_are_compared_at_the_same_n_and_against_twice_the_samples():
    gate = _gate()
    four, eight = _results(np.random.default_rng(0)), _results(np.random.default_rng(1))
    # top 8 at 1k right on 0.9 of the samples; top 4 at 1k on 0.32 and at 2k on 0.9 (both from _results)
    eight["variants"] = {
        "hour+place": eight["variants"]["hour+place"],
        "fine-tuning (1k)": eight["variants"]["fine-tuning (2k)"],
    }
    rows = {(r["a"], r["b"]): r for r in gate.layer_comparisons({"top4": four, "top8": eight}, n_boot=300)}
    assert set(rows) == {("top 8, 1k", "top 4, 1k"), ("top 8, 1k", "top 4, 2k")}
    assert rows[("top 8, 1k", "top 4, 1k")]["ci95"][0] > 0.3
    same = rows[("top 8, 1k", "top 4, 2k")]
    assert abs(same["delta"]) < 0.1 and same["ci95"][0] < same["delta"] < same["ci95"][1]  # two 0.9 rows
    assert "| top 8, 1k | top 4, 2k |" in gate.comparisons_table(list(rows.values()))
    assert gate.layer_comparisons({"top4": four}) == []
    eight["eval_samples"] = {"val_balanced": {**eight["eval_samples"]["val_balanced"], "ids": list(range(1, 121))}}
    with pytest.raises(SystemExit, match="different samples"):
        gate.layer_comparisons({"top4": four, "top8": eight})
