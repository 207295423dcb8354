"""The fast paths of ``prepare`` give exactly what the slow ones gave: DuckDB's quantiles, Jinja's prompts,
``json.dumps``' lines and ``str(pd.Timestamp)``."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import pytest

from behaviorlm_plugin.data import prompts
from behaviorlm_plugin.data.engine.validate import exact_quantiles
from behaviorlm_plugin.data.sample_rows import conversation_lines, timestamp_texts
from behaviorlm_plugin.data.samples import sorted_unique

DAY = 86400 * 10**9


@pytest.mark.parametrize("seed", range(4))
def test_exact_quantiles_are_duckdbs(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(10, 3000))
    ts = rng.integers(-40 * DAY, 400 * DAY, n) // rng.choice([1, 10**9, DAY // 7])  # ties, negatives, far days
    ts[rng.integers(0, n, 3)] = rng.integers(-(10**18), 10**18, 3)
    con = duckdb.connect()
    con.register("v", pd.DataFrame({"ts": ts.astype(np.int64)}))
    qs = (0.0, 0.01, 0.37, 0.99, 1.0)
    want = con.execute("SELECT " + ", ".join(f"quantile_cont(ts, {q})" for q in qs) + " FROM v").fetchall()[0]
    assert exact_quantiles(con, "v", "ts", qs, n) == list(want)


def test_plain_templates_render_as_jinja_does():
    text = "{ braces } {{ history }} | {{next}} -- {{ candidates }}{{ history }}\n"
    pattern = prompts._plain_pattern(text.strip())
    values = {"history": "(Mon, 1, {home}, a)", "next": "(Tue, 2, x)", "candidates": "a, b"}
    assert pattern is not None
    assert pattern.format(**values) == prompts._ENV.from_string(text.strip()).render(values)
    assert prompts._plain_pattern("{{ history | upper }} {{ next }} {{ candidates }}") is None
    assert prompts._plain_pattern("{% for e in events %}{{ e.day }}{% endfor %} {{ next }} {{ candidates }}") is None


def test_conversation_lines_are_json_dumps():
    rows = [
        {"conversations": [{"from": "human", "value": 'q "1"\n'}, {"from": "gpt", "value": "ä\\"}], "system": "s"},
        {"conversations": [], "system": "s"},
        {"system": "s", "conversations": [{"from": "human", "value": "reordered keys"}]},
        {"conversations": [{"from": "human", "value": 3}], "system": None, "id": "x"},
    ]
    assert conversation_lines(rows) == [json.dumps(r, ensure_ascii=False) for r in rows]


def test_timestamp_texts_are_pandas_strings():
    whole = np.array(["2024-03-01T00:00:00", "1999-12-31T23:59:59"], dtype="datetime64[ns]")
    fraction = np.array(["2024-03-01T00:00:00.5", "2024-03-01T00:00:00.000000001"], dtype="datetime64[ns]")
    for ts in (whole, fraction, whole[:0]):
        assert timestamp_texts(ts) == [str(pd.Timestamp(t)) for t in ts]


def test_sorted_unique_is_np_unique():
    a = np.random.default_rng(0).integers(-50, 50, 1000)
    assert np.array_equal(sorted_unique(a), np.unique(a)) and len(sorted_unique(a[:0])) == 0


def test_integer_hour_is_duckdbs_hour():
    from behaviorlm_plugin.data.engine.sample import HOUR_SQL

    rng = np.random.default_rng(0)
    edges = np.array([-1, 0, 1, -999, -1000, -1001, 3600 * 10**12 - 1, 3600 * 10**12, -(3600 * 10**12) - 1])
    ts = np.concatenate([rng.integers(-(3 * 10**18), 3 * 10**18, 20000), rng.integers(-(10**13), 10**13, 20000), edges])
    con = duckdb.connect()
    con.register("v", pd.DataFrame({"ts": ts.astype(np.int64)}))
    want, got = con.execute(f"SELECT hour(make_timestamp(ts // 1000)), {HOUR_SQL} FROM v").fetchnumpy().values()
    assert (want == got).all()


def test_mix_lines_are_json_dumps():
    from behaviorlm_plugin.data.aux_data import build_atuning_mix
    from behaviorlm_plugin.data.sample_rows import SplitRows, mix_lines

    records = [
        {"id": f"d-train_all-{i:06d}", "instruction": f'history "{i}"\n(Mon, 1, ä)\\', "input": "", "output": o}
        | {"system": 'sys "x"\n'}
        for i, o in enumerate(["Gaming", 'Cook "in"', "Lesen ä", "Gaming"])
    ]
    anchors = SplitRows(records, [], [json.dumps(r, ensure_ascii=False) for r in records], [])
    aux = [{"conversations": [{"from": "human", "value": "q\t"}, {"from": "gpt", "value": "a"}], "system": "s"}]
    aux += [{"conversations": [{"from": "human", "value": records[0]["instruction"]}], "system": "own layout"}]
    mix, _ = build_atuning_mix(records, aux, aux_ratio=1.0, anchors=None, seed=3)
    assert mix_lines(mix, anchors) == [json.dumps(r, ensure_ascii=False) for r in mix]


def test_event_texts_are_formatted_per_event():
    from behaviorlm_plugin.data.samples import EncodedEvents

    rng = np.random.default_rng(1)
    n, places, behaviors = 5000, ("home", "work", "gym"), ("Gaming", "Reading", "Eating")
    enc = EncodedEvents(
        user=np.zeros(n, dtype=np.int64), behavior=rng.integers(0, 3, n), place=rng.integers(0, 3, n),
        dow=rng.integers(0, 7, n), hour=rng.integers(0, 24, n), timestamp=np.zeros(n, dtype="datetime64[ns]"),
        users=("u",), behaviors=behaviors, places=places,
    )  # fmt: skip
    used = np.sort(rng.choice(n, 3000, replace=False))
    labels = (np.array(prompts.DAY_NAMES, dtype=object), np.array(places, dtype=object))
    got = prompts._event_texts(enc, used, *labels, np.array(behaviors, dtype=object))
    names = prompts.DAY_NAMES
    want = [f"({names[enc.dow[i]]}, {enc.hour[i]}, {places[enc.place[i]]}, {behaviors[enc.behavior[i]]})" for i in used]
    assert got[used].tolist() == want and all(v is None for v in np.delete(got, used))
