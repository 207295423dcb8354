"""The time model behind ``--list-parts``: shared work counted once, the reuse's effect, and the cpu-main plan."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from behaviorlm_plugin.runs.bench.runner import load_suite
from behaviorlm_plugin.runs.bench.time_model import (
    LayerScales,
    at_samples,
    estimate_part,
    estimate_parts,
    layer_scales,
    nested,
    without_reuse,
)

ROOT = Path(__file__).resolve().parents[2]
CPU_MAIN = ROOT / "yaml_recipes" / "bench" / "cpu-main.yaml"


def test_cpu_main_parts_fit_an_hour_and_the_4k_plan_fits_8_hours_only_with_the_reuse():
    suite = load_suite(CPU_MAIN)
    assert suite.time_model.plan_samples == [2000, 4000, 8000] and len(suite.seeds) == 3
    at_4k = at_samples(suite, 4000)
    parts = estimate_parts(at_4k)
    assert max(parts.values()) <= 60 * 60, {k: round(v / 60) for k, v in parts.items()}
    assert sum(parts.values()) <= 8 * 3600
    assert sum(estimate_parts(without_reuse(at_4k)).values()) > 8 * 3600  # the reuse is what makes it fit
    sizes = [sum(estimate_parts(at_samples(suite, n)).values()) for n in (2000, 4000, 8000)]
    assert sizes[0] < sizes[1] < sizes[2]


def test_parts_in_order_pay_for_shared_work_once():
    suite = load_suite(CPU_MAIN)
    alone = {p.name: estimate_part(suite, p) for p in suite.parts}
    in_order = estimate_parts(suite)
    # s1 scores what s1-train-a and s1-train-ft trained: in order it pays only for scoring, alone for everything.
    assert in_order["s1"] < alone["s1"] / 2
    # A train-only part scores no model: each model scored alone changes the scoring part, not it.
    alone_scoring = estimate_parts(load_suite(CPU_MAIN, ["time_model.score_model_fraction=1.0"]))
    assert alone_scoring["s1-train-a"] == in_order["s1-train-a"] and alone_scoring["s1"] > 2 * in_order["s1"]
    # Later seeds reuse seed 0's first pass (data_seed): each trains for less than the first.
    assert in_order["s1-train-ft"] < alone["s1-train-ft"]
    per_seed_data = load_suite(CPU_MAIN, ["data_seed=null"])
    assert sum(estimate_parts(per_seed_data).values()) > sum(in_order.values())


def test_the_plan_prints_every_size_and_the_comparison(capsys):
    from behaviorlm_plugin.cli import main as cli_main

    assert cli_main(["bench", str(CPU_MAIN), "--list-parts"]) == 0
    out = capsys.readouterr().out
    assert "2,000 a row" in out and "8,000 a row" in out and "without reuse" in out
    assert out.count("\n  s1-train-a") == 2  # once in the part list, once in the plan


def test_a_larger_draw_pays_only_for_the_samples_a_smaller_one_left_uncached():
    pilot = load_suite(ROOT / "yaml_recipes" / "bench" / "cpu-pilot.yaml")
    tm = pilot.time_model
    alone = {p.name: estimate_part(pilot, p) for p in pilot.parts}
    in_order = estimate_parts(pilot)
    one_sample = tm.tokens_per_sample / tm.first_pass_tokens_per_s
    # n4k-ft's 4,000 natural samples hold n2k's 2,000 (one seeded stream): its first pass covers the other 2,000.
    assert abs((alone["n4k-ft"] - in_order["n4k-ft"]) - 2000 * one_sample) < 1e-6
    # The A-Tuning mixes nest the same way (anchors and aux conversations: 4,200 after 2,100).
    assert abs((alone["n4k-a"] - in_order["n4k-a"]) - 2100 * one_sample) < 1e-6


def test_list_parts_shows_a_done_parts_own_time_and_the_ratio_to_its_estimate(monkeypatch):
    from behaviorlm_plugin.runs.bench import parts

    pilot = load_suite(ROOT / "yaml_recipes" / "bench" / "cpu-pilot.yaml")
    estimates = estimate_parts(pilot)
    walls = {"refs": 2 * estimates["refs"], "n1k": 2 * estimates["n1k"]}
    files = {name: {"complete": True, "wall_seconds": wall} for name, wall in walls.items()}
    monkeypatch.setattr(parts, "trusted_part", lambda suite, name: files.get(name))
    table = parts.parts_table(pilot)
    assert f"done in {walls['n1k'] / 60:.1f} min" in table and "n2k" in table and "todo" in table
    assert "the done parts took 2.00x their estimates" in table
    # A part alone on an empty cache (a fresh checkout) pays for its smaller siblings' first pass: n4k-ft's cold
    # estimate is the larger one.
    n4k = next(line for line in table.splitlines() if line.strip().startswith("n4k-ft"))
    in_order, cold = (float(x) for x in re.findall(r"~\s*([\d.]+)", n4k)[:2])
    assert cold > in_order


@pytest.mark.parametrize(
    ("small", "large", "pool"),
    [
        (1000, 2000, 40000),
        (2000, 8000, 40000),
        (4000, 8000, 38839),
        (500, 1000, 40000),
        (1000, 2000, 10000),
        (5, 9, 400),
    ],
)
def test_the_nesting_rule_is_numpys(small, large, pool):
    """steps.subset and the A-Tuning mix draw with Generator.choice(pool, n, replace=False): the time model's rule
    for when a smaller draw's samples are all in a larger one must match what numpy does (a numpy change fails here)."""
    for seed in range(3):
        a = set(np.random.default_rng([seed, 2]).choice(pool, small, replace=False).tolist())
        b = set(np.random.default_rng([seed, 2]).choice(pool, large, replace=False).tolist())
        assert (a <= b) == nested(small, large, pool), (small, large, pool, seed)


PILOT = ROOT / "yaml_recipes" / "bench" / "cpu-pilot.yaml"


def test_rates_measured_at_4_tuned_layers_scale_to_8():
    """With the reuse an epoch costs in proportion to the tuned layers and the first pass to the frozen ones: at
    N = 8 of 30 against the rates' N = 4, an epoch costs twice as much and the first pass 22/26 of it."""
    top4, top8 = load_suite(PILOT), load_suite(PILOT, ["lora_top_layers=8"])
    assert (top4.time_model.rates_top_layers, top4.time_model.model_layers) == (4, 30)
    assert layer_scales(top4) == LayerScales()
    scales = layer_scales(top8)
    assert scales.epoch == 2.0 and scales.first_pass == pytest.approx(22 / 26)
    assert scales.stock_epoch == pytest.approx((30 + 16) / (30 + 8))
    tm = top4.time_model
    epoch = 8000 * tm.tokens_per_sample / tm.train_tokens_per_s
    first_pass = 8000 * tm.tokens_per_sample / tm.first_pass_tokens_per_s
    part = next(p for p in top4.parts if p.name == "n8k-ft")  # one training run of 8,000 samples, cold
    extra = estimate_part(top8, part) - estimate_part(top4, part)
    assert extra == pytest.approx(epoch * (2 - 1) + first_pass * (22 / 26 - 1))
    # Rates without their layers are used as they are, whatever the suite tunes.
    unscaled = load_suite(
        PILOT, ["lora_top_layers=8", "time_model.rates_top_layers=null", "time_model.model_layers=null"]
    )
    assert layer_scales(unscaled) == LayerScales() and estimate_part(unscaled, part) == estimate_part(top4, part)


def test_without_the_reuse_there_is_no_first_pass_and_the_stock_rates_scale_by_l_plus_2n():
    """frozen_reuse off trains at stock_train_tokens_per_s; stock_forward (no answer-only head either) at
    stock_forward_tokens_per_s; both scale by (L + 2N) / (L + 2N_r) at another lora_top_layers."""
    pilot = load_suite(PILOT)
    tm = pilot.time_model
    part = next(p for p in pilot.parts if p.name == "n8k-ft")
    tokens = 8000 * tm.tokens_per_sample
    scale8 = (30 + 16) / (30 + 8)
    for top in (4, 8):
        scale = 1.0 if top == 4 else scale8
        at = [f"lora_top_layers={top}"]
        usual = estimate_part(load_suite(PILOT, at), part)
        usual_reuse = tokens / tm.train_tokens_per_s * top / 4 + tokens / tm.first_pass_tokens_per_s * (30 - top) / 26
        off = estimate_part(load_suite(PILOT, [*at, "frozen_reuse.enabled=false"]), part)
        assert off - usual == pytest.approx(tokens / tm.stock_train_tokens_per_s * scale - usual_reuse)
        stock = estimate_part(load_suite(PILOT, [*at, "stock_forward=true"]), part)
        assert stock - usual == pytest.approx(tokens / tm.stock_forward_tokens_per_s * scale - usual_reuse)
    assert tm.stock_forward_tokens_per_s < tm.stock_train_tokens_per_s  # the full LM head costs more
    # without_reuse (the plan's comparison) is the frozen_reuse-off estimate.
    top8 = load_suite(PILOT, ["lora_top_layers=8"])
    assert estimate_part(without_reuse(top8), part) - estimate_part(without_reuse(pilot), part) == pytest.approx(
        tokens / tm.stock_train_tokens_per_s * (scale8 - 1)
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["time_model.model_layers=null"], "go together"),
        (["time_model.rates_top_layers=30"], "between 1 and model_layers - 1"),
        (["time_model.model_layers=1", "time_model.rates_top_layers=1"], "must be >= 2"),
        (["lora_top_layers=31"], "more than time_model.model_layers=30"),
    ],
)
def test_the_layer_fields_are_checked(overrides, message):
    with pytest.raises(Exception, match=message):
        load_suite(PILOT, overrides)
