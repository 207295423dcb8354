"""Registries for selection strategies and bench variant kinds: keyword-only, validating, refusing duplicates."""

import pytest

from behaviorlm_plugin.hparams.selection_args import SelectionArguments
from behaviorlm_plugin.runs.bench import variants
from behaviorlm_plugin.tuning import strategies
from behaviorlm_plugin.tuning.selection import Scored, select


@pytest.fixture
def clean_strategies():
    saved = dict(strategies._STRATEGIES)
    yield
    strategies._STRATEGIES.clear()
    strategies._STRATEGIES.update(saved)


@pytest.fixture
def clean_kinds():
    saved = dict(variants._KINDS)
    yield
    variants._KINDS.clear()
    variants._KINDS.update(saved)


def test_strategy_registry_refuses_duplicates_and_bad_input(clean_strategies):
    assert {"dds_cds", "dds", "uniform"} <= set(strategies.strategy_names())
    with pytest.raises(ValueError, match="already registered"):
        strategies.register_selection_strategy(name="dds", miss_tier=None)
    with pytest.raises(ValueError, match="identifier"):
        strategies.register_selection_strategy(name="not a name", miss_tier=None)
    with pytest.raises(TypeError, match="callable"):
        strategies.register_selection_strategy(name="x", miss_tier=3)
    with pytest.raises(TypeError):
        strategies.register_selection_strategy("x", None)  # keyword-only
    with pytest.raises(ValueError, match="unknown selection strategy 'nope'"):
        strategies.get_strategy("nope")


def test_a_registered_strategy_is_used_by_select_and_accepted_by_the_config(clean_strategies):
    # "tail first": a miss on a tail truth is tier 1, any other miss tier 2.
    strategies.register_selection_strategy(
        name="tail_first", miss_tier=lambda label, pred, at: 1 if at[label] == "tail" else 2
    )
    at = {"A": "anchor", "T": "tail"}
    labels = ["A", "A", "T", "T"]
    verdicts = {0: Scored("T", 0.1), 1: Scored("A", 0.9), 2: Scored("A", 0.2), 3: Scored("T", 0.8)}
    picks, report = select(
        labels, at, SelectionArguments(k=1, strategy="tail_first", seed=0), lambda ix: [verdicts[i] for i in ix]
    )
    tiers = {p["label"]: p["tier"] for p in picks}
    assert tiers == {"A": "mispredicted", "T": "mispredicted_same_category"} and report["strategy"] == "tail_first"


def test_variant_kind_registry(clean_kinds):
    builtin = {"zero_shot", "anchor_only", "behaviorlm", "full_ft", "balanced_ft", "one_stage", "logreg", "hour_place"}
    assert set(variants.kind_names()) == builtin | {"reverse", "oracle"}
    with pytest.raises(ValueError, match="already registered"):
        variants.register_variant_kind(name="reverse", stage1=lambda *a: None, b_tuning=True)
    with pytest.raises(TypeError, match="stage1 must be callable"):
        variants.register_variant_kind(name="x", stage1=None, b_tuning=True)
    kind = variants.register_variant_kind(name="b_only", stage1=lambda *a: None, b_tuning=True)
    assert variants.get_variant_kind("b_only") is kind and "b_only" in variants.kind_names()
    with pytest.raises(ValueError, match="unknown variant kind"):
        variants.get_variant_kind("nope")
