"""Hypothesis fuzz through FastAPI's TestClient: whatever the body, the server answers, and never 500."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serve_fakes import BEHAVIORS, make_app

CLIENT = TestClient(make_app(max_history_events=6, max_body_bytes=4000, max_batch_requests=3))
CLIENT.__enter__()  # one app (and batcher) for every example; the process exit closes it

text = st.one_of(
    st.sampled_from([*BEHAVIORS, "Mon", "tuesday", "home", "instruct1", "", "Yoga "]), st.text(max_size=12)
)
scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.floats(allow_nan=True, allow_infinity=True), text
)
when = st.fixed_dictionaries(
    {},
    optional={
        "day": st.one_of(text, scalar),
        "hour": st.one_of(st.integers(-2, 30), scalar),
        "timestamp": st.one_of(
            st.sampled_from(["2024-03-04T08:00:00+09:00", "2024-02-30T08:00", "1709539200", "99999-01-01"]),
            st.integers(0, 10**19),
            scalar,
        ),
        "place": st.one_of(text, scalar),
        "behavior": st.one_of(st.sampled_from(BEHAVIORS), text, scalar),
        "extra": scalar,
    },
)
json_value = st.recursive(scalar, lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(text, c, max_size=3)))
request = st.fixed_dictionaries(
    {},
    optional={
        "history": st.one_of(st.lists(when, max_size=8), json_value),
        "next": st.one_of(when, json_value),
        "candidates": st.one_of(st.lists(st.one_of(st.sampled_from(BEHAVIORS), text), max_size=6), json_value),
        "top_k": st.one_of(st.integers(-3, 20), scalar),
        "prompt_format": st.one_of(st.sampled_from(["instruct1", "instruct3", "../x"]), scalar),
        "alpha": st.one_of(st.floats(-1, 5), scalar),
        "timezone": st.one_of(st.sampled_from(["Europe/Paris", "UTC", "../../etc/passwd"]), scalar),
        "id": scalar,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.one_of(request, json_value))
def test_predict_never_500s(body):
    r = CLIENT.post("/v1/predict", content=json.dumps(body, allow_nan=True))
    assert r.status_code in (200, 413, 422), (r.status_code, r.text, body)
    if r.status_code == 200:
        probs = [x["prob"] for x in r.json()["ranked"]]
        assert probs == sorted(probs, reverse=True) and all(0 <= p <= 1 for p in probs) and sum(probs) <= 1 + 1e-9


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reqs=st.lists(request, max_size=4), raw=st.binary(max_size=64))
def test_batch_and_raw_bytes_never_500(reqs, raw):
    r = CLIENT.post("/v1/predict/batch", content=json.dumps({"requests": reqs}, allow_nan=True))
    assert r.status_code in (200, 413, 422), (r.status_code, r.text)
    r = CLIENT.post("/v1/predict", content=raw, headers={"content-type": "application/json"})
    assert r.status_code in (400, 413, 422), (r.status_code, r.text)  # 400: not UTF-8 / JSON at all
