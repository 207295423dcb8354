"""The canary log (`prepare --synthetic canary`): behavior a fixed function of the place (or place and part of day)
on the default simulator's users, times and places; its splits, its one-hot oracle, its config and fingerprints."""

import json
import re
from dataclasses import asdict, replace

import numpy as np
import pandas as pd
import pytest
from conftest import small_prepare_args

from behaviorlm_plugin.data.canary import (
    CANARY_BY_PLACE,
    CANARY_BY_PLACE_AND_PART,
    DAY_PARTS,
    canary_behaviors,
    canary_events,
    canary_with_truth,
)
from behaviorlm_plugin.data.dataset import PreparedDataset
from behaviorlm_plugin.data.oracle import ORACLE_SPLITS, ORACLE_SUFFIX, read_oracle
from behaviorlm_plugin.data.prepare import BEHAVIOR_SPLITS, ensure_prepared, prepare
from behaviorlm_plugin.data.registry import RegistrationError
from behaviorlm_plugin.data.simulator import BEHAVIORS, PLACES, SimulatorConfig, simulate_events
from behaviorlm_plugin.eval.reference import reference_rows
from behaviorlm_plugin.extras.constants import FEATURE_SPLITS, STATS_FILE
from behaviorlm_plugin.extras.fileio import read_jsonl
from behaviorlm_plugin.hparams.data_args import PrepareArguments
from behaviorlm_plugin.hparams.parser import ConfigError, build, parse_cli
from behaviorlm_plugin.runs.pipeline import prepare_record

SMALL = SimulatorConfig(num_users=60, num_days=14, seed=7)


def _part(hour: int) -> str:
    """The part of the day, written out (not the module's hour // 6)."""
    return "night" if hour < 6 else "morning" if hour < 12 else "afternoon" if hour < 18 else "evening"


def _rule(place: str, hour: int, rule: str) -> str:
    return CANARY_BY_PLACE[place] if rule == "place" else CANARY_BY_PLACE_AND_PART[place][DAY_PARTS.index(_part(hour))]


def canary_args(tmp_path, rule: str | None, **kw) -> PrepareArguments:
    """The canary at the size of the suite's gate: 400 users x 4 days (~42 events each), a 5-event history."""
    base = dict(synthetic="canary", canary_rule=rule, synthetic_users=400, synthetic_days=4, history_len=5)
    base |= dict(max_train_samples=None, max_val_samples=300, max_test_samples=600, balanced_per_class=50)
    return small_prepare_args(tmp_path, name=f"canary_{rule}", **(base | kw))


@pytest.fixture(scope="module")
def prepared_canaries(tmp_path_factory) -> dict[str, tuple[PreparedDataset, dict]]:
    d = tmp_path_factory.mktemp("canary")
    out = {}
    for rule in ("place", "place_hour"):
        stats = prepare(canary_args(d, rule), log=lambda _m: None)
        out[rule] = PreparedDataset(d, f"canary_{rule}"), stats
    return out


# ----------------------------------------------------------------------------- the log
def test_same_seed_same_bytes_and_the_default_simulators_events():
    a, b = canary_events(SMALL, "place_hour"), canary_events(SMALL, "place_hour")
    assert a.to_csv(index=False) == b.to_csv(index=False)
    other = canary_events(replace(SMALL, seed=8), "place_hour")
    assert other.to_csv(index=False) != a.to_csv(index=False)
    default = simulate_events(SMALL)
    # the same users, times and places as the default data (as noisy a history); only the behaviors differ
    pd.testing.assert_frame_equal(a.drop(columns="behavior"), default.drop(columns="behavior"))
    assert (a["behavior"].astype(str) != default["behavior"].astype(str)).mean() > 0.5


@pytest.mark.parametrize("rule", ["place", "place_hour"])
def test_behavior_is_the_rule_on_every_event(rule):
    df = canary_events(replace(SMALL, num_users=200), rule)
    want = [_rule(p, t.hour, rule) for p, t in zip(df["place"].astype(str), df["timestamp"], strict=True)]
    assert df["behavior"].astype(str).tolist() == want
    assert list(df["behavior"].cat.categories) == list(canary_behaviors(rule))
    assert set(canary_behaviors(rule)) <= set(BEHAVIORS)
    assert len(canary_behaviors(rule)) == (7 if rule == "place" else 16)


def test_every_place_has_a_behavior_in_every_part_of_the_day():
    assert set(CANARY_BY_PLACE) == set(CANARY_BY_PLACE_AND_PART) == set(PLACES)
    assert all(len(parts) == len(DAY_PARTS) for parts in CANARY_BY_PLACE_AND_PART.values())


def test_classes_are_unequal_and_the_place_hour_rule_has_rare_ones():
    df = canary_events(SimulatorConfig(num_users=400, num_days=4, seed=42), "place_hour")
    share = df["behavior"].value_counts(normalize=True)
    assert share.max() > 0.2 and (share < 0.01).sum() >= 2 and (share > 0).all()


def test_truth_is_one_hot_on_the_rule():
    df, truth = canary_with_truth(SMALL, "place_hour")
    assert truth.shape == (len(df), len(BEHAVIORS)) and set(np.unique(truth)) == {0.0, 1.0}
    assert (truth.sum(1) == 1).all()
    assert [BEHAVIORS[i] for i in truth.argmax(1)] == df["behavior"].astype(str).tolist()


# ----------------------------------------------------------------------------- prepared
@pytest.mark.parametrize("rule", ["place", "place_hour"])
def test_prepare_writes_every_split_and_every_label_is_the_rule(prepared_canaries, rule):
    data, stats = prepared_canaries[rule]
    written = stats["splits"]["samples_written"]
    cats = stats["categories"]
    assert stats["canary"] == {"rule": rule, "behaviors": 7 if rule == "place" else 16}
    assert "synthetic" not in stats  # the TV distance to the paper's table means nothing here
    assert stats["source"]["source"].startswith(f"canary(rule={rule}, users=400, days=4")
    if rule == "place":  # every place is > 1% of events: all anchors, no tail (docs/simulator.md)
        assert cats["n_tail"] == 0 and written["train_tail"] == 0
        assert all(written[s] > 0 for s in BEHAVIOR_SPLITS if s != "train_tail")
    else:
        assert cats["n_anchor"] >= 10 and cats["n_tail"] >= 2
        assert all(written[s] > 0 for s in BEHAVIOR_SPLITS), written
    for split in FEATURE_SPLITS:
        with np.load(data.path(split).with_suffix(".features.npz")) as z:
            places, behaviors = [str(p) for p in z["places"]], [str(b) for b in z["behaviors"]]
            got = [behaviors[b] for b in z["label"]]
            want = [_rule(places[p], int(h), rule) for p, h in zip(z["next_place"], z["next_hour"], strict=True)]
            hist = [behaviors[b] for b in z["hist_behavior"].ravel()]
            pairs = zip(z["hist_place"].ravel(), z["hist_hour"].ravel(), strict=True)
            hist_want = [_rule(places[p], int(h), rule) for p, h in pairs]
        assert got == want and hist == hist_want, split
    metas = read_jsonl(data.path("test").with_suffix(".meta.jsonl"))
    assert all(sorted(m["candidates"]) == sorted(canary_behaviors(rule)) for m in metas)


def test_the_oracle_is_one_hot_on_the_label(prepared_canaries):
    data, _ = prepared_canaries["place_hour"]
    for split in ORACLE_SPLITS:
        index, probs, behaviors = read_oracle(data.base / f"{split}{ORACLE_SUFFIX}")
        metas = read_jsonl(data.path(split).with_suffix(".meta.jsonl"))
        assert len(index) == len(metas) > 0 and behaviors == list(canary_behaviors("place_hour"))
        assert set(np.unique(probs)) == {0.0, 1.0} and (probs.sum(1) == 1).all()
        assert [behaviors[i] for i in probs[[index[m["id"]] for m in metas]].argmax(1)] == [m["label"] for m in metas]


def test_hour_place_reference_is_near_perfect_on_the_place_canary(prepared_canaries):
    data, stats = prepared_canaries["place"]
    ids = [m["id"] for m in read_jsonl(data.path("test").with_suffix(".meta.jsonl"))]
    rows = reference_rows(data, "test", ids)
    assert np.mean([r["correct"] for r in rows["hour+place"]]) >= 0.99
    assert np.mean([r["correct"] for r in rows["majority"]]) < 0.6  # the rule is needed, the prior is not enough
    assert stats["baselines"]["hour_place_accuracy"] >= 0.99


# ----------------------------------------------------------------------------- configuration
def test_flags_and_yaml():
    args, _ = parse_cli(PrepareArguments, ["--synthetic"], prog="p")
    assert args.synthetic is True and args.canary_rule is None
    args, _ = parse_cli(PrepareArguments, ["--synthetic", "canary", "--name", "c"], prog="p")
    assert (args.synthetic, args.canary_rule, args.name) == ("canary", "place", "c")
    args, _ = parse_cli(PrepareArguments, ["--synthetic=canary", "--canary-rule", "place_hour"], prog="p")
    assert (args.synthetic, args.canary_rule) == ("canary", "place_hour")
    args = build(PrepareArguments, {"synthetic": "canary", "canary_rule": "place_hour"}, where="f.yaml")
    assert (args.synthetic, args.canary_rule) == ("canary", "place_hour")
    with pytest.raises(ConfigError, match="synthetic: expected bool or 'canary', got 'canari'"):
        parse_cli(PrepareArguments, ["--synthetic", "canari"], prog="p")
    with pytest.raises(ConfigError, match=re.escape("canary_rule: expected 'place' | 'place_hour'")):
        build(PrepareArguments, {"synthetic": "canary", "canary_rule": "hour"}, where="f.yaml")


@pytest.mark.parametrize(
    "kw",
    [{"synthetic": True}, {"events": "events.csv"}, {}],
    ids=["with --synthetic", "with --events", "alone"],
)
def test_canary_rule_without_the_canary_names_the_key_and_the_fix(kw):
    with pytest.raises(ValueError, match=r"--canary_rule place_hour: only read with --synthetic canary .*drop"):
        PrepareArguments(canary_rule="place_hour", **kw)
    with pytest.raises(ConfigError, match=r"f\.yaml: --canary_rule place_hour: only read with --synthetic canary"):
        build(PrepareArguments, {"canary_rule": "place_hour", **kw}, where="f.yaml")


def test_bad_values_in_python_are_refused():
    with pytest.raises(ValueError, match="--synthetic must be true, false or canary"):
        PrepareArguments(synthetic="behaviors")
    with pytest.raises(ValueError, match="--canary_rule must be one of place, place_hour"):
        PrepareArguments(synthetic="canary", canary_rule="hour")


def test_fingerprints_and_older_stats_of_the_default_data_are_unchanged(tmp_path):
    default = small_prepare_args(tmp_path)
    assert "canary_rule" not in prepare_record(default)  # a run's prepare fingerprint, as before the canary
    assert prepare_record(canary_args(tmp_path, None))["canary_rule"] == "place"
    prepare(default, log=lambda _m: None)
    stats_path = tmp_path / "beh" / STATS_FILE
    stats = json.loads(stats_path.read_text())
    assert stats["arguments"] == asdict(default) and "canary" not in stats
    del stats["arguments"]["canary_rule"]  # as a stats.json written before the canary
    stats_path.write_text(json.dumps(stats))
    assert ensure_prepared(default, log=lambda _m: None) is True  # reused, not re-prepared
    with pytest.raises(RegistrationError, match="canary_rule"):  # another dataset (the canary) is not reused silently
        ensure_prepared(replace(default, synthetic="canary", canary_rule="place"), log=lambda _m: None)


def test_a_prepared_canary_is_reused_with_the_same_arguments(prepared_canaries):
    data, _ = prepared_canaries["place_hour"]
    args = canary_args(data.base.parent, "place_hour")
    assert ensure_prepared(args, log=lambda _m: None) is True
    with pytest.raises(RegistrationError, match=r"other arguments \(canary_rule\)"):
        ensure_prepared(replace(args, canary_rule="place"), log=lambda _m: None)


def test_prepare_gives_the_same_bytes_again(prepared_canaries, tmp_path):
    data, _ = prepared_canaries["place_hour"]
    prepare(canary_args(tmp_path, "place_hour"), log=lambda _m: None)
    again = PreparedDataset(tmp_path, "canary_place_hour")
    for split in BEHAVIOR_SPLITS:
        assert again.path(split).read_bytes() == data.path(split).read_bytes(), split
    with np.load(again.base / f"test{ORACLE_SUFFIX}") as a, np.load(data.base / f"test{ORACLE_SUFFIX}") as b:
        assert (a["probs"] == b["probs"]).all() and (a["ids"] == b["ids"]).all()
