import pytest

from behaviorlm_plugin.tuning.selection import Scored, SelectionArguments, select, tier_of

AT = {"A1": "anchor", "A2": "anchor", "T1": "tail", "T2": "tail"}


def test_tiers():
    assert tier_of("A1", Scored("A2", 0.1), AT, "dds_cds") == 1  # same category: contrastive
    assert tier_of("A1", Scored("T1", 0.1), AT, "dds_cds") == 2
    assert tier_of("A1", Scored("T1", 0.1), AT, "dds") == 1  # w/o CDS: every miss is tier 1
    assert tier_of("A1", Scored("A1", 0.9), AT, "dds_cds") == 3
    assert tier_of("A1", None, AT, "dds_cds") == 4


def _pool():
    # 30 A1 samples, 6 T1 samples, 2 T2 samples; verdicts fixed per index
    labels = ["A1"] * 30 + ["T1"] * 6 + ["T2"] * 2
    verdict = {}
    for i in range(30):
        verdict[i] = Scored("A2" if i % 3 == 0 else "T1" if i % 3 == 1 else "A1", 0.01 * i)
    for i in range(30, 36):
        verdict[i] = Scored("A1" if i < 32 else "T2" if i < 34 else "T1", 0.05 * (i - 30))
    verdict[36], verdict[37] = Scored("T2", 0.9), Scored("T2", 0.8)
    return labels, verdict


def _run(strategy, k=3, **kw):
    labels, verdict = _pool()
    calls = []

    def score_fn(idxs):
        calls.extend(idxs)
        return [verdict[i] for i in idxs]

    picks, report = select(labels, AT, SelectionArguments(k=k, strategy=strategy, chunk_size=2, seed=0, **kw), score_fn)
    return picks, report, calls


def test_dds_cds_prefers_same_category_misses_and_stops_early():
    picks, report, calls = _run("dds_cds")
    a1 = [p for p in picks if p["label"] == "A1"]
    assert len(a1) == 3 and all(p["tier"] == "mispredicted_same_category" and p["predicted"] == "A2" for p in a1)
    assert report["per_behavior"]["A1"]["scored"] < 30  # stopped once it had k tier-1 samples
    t1 = [p for p in picks if p["label"] == "T1"]
    assert [p["tier"] for p in t1] == ["mispredicted_same_category"] * 2 + ["mispredicted"]
    t2 = [p for p in picks if p["label"] == "T2"]  # short: only correct ones exist, lowest prob first
    assert [p["true_prob"] for p in t2] == [0.8, 0.9] and report["per_behavior"]["T2"]["short_by"] == 1
    assert report["scored_total"] == len(set(calls)) == len(calls)


def test_dds_without_cds_takes_any_miss():
    picks, _, _ = _run("dds")
    assert {p["tier"] for p in picks if p["label"] == "A1"} == {"mispredicted_same_category"}
    assert {p["predicted"] for p in picks if p["label"] == "A1"} <= {"A2", "T1"}


def test_uniform_scores_nothing():
    picks, report, calls = _run("uniform")
    assert calls == [] and report["scored_total"] == 0
    assert sum(p["label"] == "A1" for p in picks) == 3 and {p["tier"] for p in picks} == {"uniform"}


def test_max_scored_per_class_fills_with_unscored():
    _, report, _ = _run("dds_cds", k=5, max_scored_per_class=2)
    assert report["per_behavior"]["A1"]["scored"] == 2
    assert "unscored" in report["per_behavior"]["A1"]["tiers"]


def test_same_seed_same_selection():
    a, _, _ = _run("dds_cds")
    b, _, _ = _run("dds_cds")
    assert a == b


def test_bad_arguments():
    from behaviorlm_plugin.tuning.strategies import check_strategy_name

    with pytest.raises(ValueError):
        SelectionArguments(k=0)
    # The strategy name is checked where it is used (runs check it before any step), not by the config class.
    with pytest.raises(ValueError, match="strategy must be one of dds, dds_cds, uniform; got 'random'"):
        check_strategy_name(SelectionArguments(strategy="random").strategy)
