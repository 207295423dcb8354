"""Hypothesis fuzz through FastAPI's TestClient: whatever the body, the server answers, and never 500.

Bodies go out as ``application/json``: without that header FastAPI never parses the body and answers every
one with the same 422 ("a valid dictionary"), which is how this fuzz once missed the NaN 500."""

from __future__ import annotations

import json
import math

import httpx
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serve_fakes import BEHAVIORS, make_app

CLIENT = TestClient(make_app(max_history_events=6, max_body_bytes=4000, max_batch_requests=3))
CLIENT.__enter__()  # one app (and batcher) for every example; the process exit closes it
JSON = {"content-type": "application/json"}
NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])


def post(path: str, body) -> httpx.Response:
    """POST ``body`` as JSON as Python writes it (NaN, Infinity included) and check the answer's shape."""
    r = CLIENT.post(path, content=json.dumps(body, allow_nan=True), headers=JSON)
    if 400 <= r.status_code < 500:
        assert json.loads(r.text, parse_constant=_refuse).get("detail"), r.text  # strict JSON, with a detail
    return r


def _refuse(token):
    raise AssertionError(f"an answer holds {token}, which JSON cannot")


text = st.one_of(
    st.sampled_from([*BEHAVIORS, "Mon", "tuesday", "home", "instruct1", "", "Yoga "]), st.text(max_size=12)
)
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    NON_FINITE,
    text,
)
when = st.fixed_dictionaries(
    {},
    optional={
        "day": st.one_of(text, scalar),
        "hour": st.one_of(st.integers(-2, 30), NON_FINITE, scalar),
        "timestamp": st.one_of(
            st.sampled_from(["2024-03-04T08:00:00+09:00", "2024-02-30T08:00", "1709539200", "99999-01-01"]),
            st.integers(0, 10**19),
            NON_FINITE,
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
        "top_k": st.one_of(st.integers(-3, 20), NON_FINITE, scalar),
        "prompt_format": st.one_of(st.sampled_from(["instruct1", "instruct3", "../x"]), scalar),
        "alpha": st.one_of(st.floats(-1, 5), NON_FINITE, scalar),
        "timezone": st.one_of(st.sampled_from(["Europe/Paris", "UTC", "../../etc/passwd"]), scalar),
        "id": scalar,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.one_of(request, json_value))
def test_predict_never_500s(body):
    r = post("/v1/predict", body)
    assert r.status_code in (200, 413, 422), (r.status_code, r.text, body)
    if r.status_code == 200:
        probs = [x["prob"] for x in r.json()["ranked"]]
        assert probs == sorted(probs, reverse=True) and all(0 <= p <= 1 for p in probs) and sum(probs) <= 1 + 1e-9


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reqs=st.lists(request, max_size=4), raw=st.binary(max_size=64))
def test_batch_and_raw_bytes_never_500(reqs, raw):
    r = post("/v1/predict/batch", {"requests": reqs})
    assert r.status_code in (200, 413, 422), (r.status_code, r.text)
    r = CLIENT.post("/v1/predict", content=raw, headers={"content-type": "application/json"})
    assert r.status_code in (400, 413, 422), (r.status_code, r.text)  # 400: not UTF-8 / JSON at all


def test_the_fuzz_reaches_the_json_parser():
    """The harness itself: a well-formed body is scored (200) and a NaN reaches field validation (422 on alpha)."""
    body = {"history": [{"behavior": "Cooking", "day": "Mon", "hour": 8, "place": "home"}]}
    body["next"] = {"day": "Tue", "hour": 9, "place": "office"}
    assert post("/v1/predict", body).status_code == 200
    r = post("/v1/predict", {**body, "alpha": math.nan})
    assert r.status_code == 422 and [d["loc"] for d in r.json()["detail"]] == [["body", "alpha"]]
