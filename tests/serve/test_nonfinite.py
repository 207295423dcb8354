"""Non-finite numbers (NaN, Infinity, -Infinity, 1e999) sent as raw bytes: no JSON library writes them, but
Python's json reads them. Every numeric field refuses them with 422 naming the field, and no error answer
echoes a value that JSON cannot hold."""

from __future__ import annotations

import json
import math

import pytest
from fastapi.testclient import TestClient
from serve_fakes import make_app, request

JSON = {"content-type": "application/json"}
TOKENS = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"]
MARK = "__RAW__"


def _strict(text: str):
    """Parse an answer as strict JSON: a NaN or an infinity in it fails the test."""

    def refuse(token):
        raise AssertionError(f"the answer holds {token}, which JSON cannot: {text[:300]}")

    def finite(token):
        value = float(token)
        return value if math.isfinite(value) else refuse(token)

    return json.loads(text, parse_constant=refuse, parse_float=finite)


def _raw(body: dict, token: str) -> bytes:
    """``body`` as JSON with the string ``MARK`` replaced by ``token`` as a bare literal."""
    text = json.dumps(body)
    assert text.count(f'"{MARK}"') == 1
    return text.replace(f'"{MARK}"', token).encode()


def _next_timestamp(b: dict) -> None:
    b["next"] = {"timestamp": MARK, "place": "office"}


def _history_timestamp(b: dict) -> None:
    b["history"][1] = {"behavior": "Gaming", "timestamp": MARK, "place": "home"}


FIELDS = {
    "alpha": (lambda b: b.update(alpha=MARK), ["body", "alpha"]),
    "top_k": (lambda b: b.update(top_k=MARK), ["body", "top_k"]),
    "history.hour": (lambda b: b["history"][0].update(hour=MARK), ["body", "history", 0, "hour"]),
    "next.hour": (lambda b: b["next"].update(hour=MARK), ["body", "next", "hour"]),
    "next.timestamp": (_next_timestamp, ["body", "next", "timestamp"]),
    "history.timestamp": (_history_timestamp, ["body", "history", 1, "timestamp"]),
}


@pytest.fixture(scope="module")
def client():
    with TestClient(make_app()) as c:
        yield c


@pytest.mark.parametrize("token", TOKENS)
@pytest.mark.parametrize("field", list(FIELDS))
def test_a_non_finite_number_is_422_naming_the_field(client, field, token):
    mutate, loc = FIELDS[field]
    body = request(4)
    mutate(body)
    r = client.post("/v1/predict", content=_raw(body, token), headers=JSON)
    assert r.status_code == 422, (r.status_code, r.text)
    detail = _strict(r.text)["detail"]
    assert [d["loc"] for d in detail] == [loc], detail
    assert "finite" in detail[0]["msg"]


@pytest.mark.parametrize("token", ["NaN", "Infinity"])
def test_a_non_finite_number_in_a_batch_is_422_naming_the_request(client, token):
    bad = request(2, alpha=MARK)
    r = client.post("/v1/predict/batch", content=_raw({"requests": [request(2), bad]}, token), headers=JSON)
    assert r.status_code == 422, (r.status_code, r.text)
    assert [d["loc"] for d in _strict(r.text)["detail"]] == [["body", "requests", 1, "alpha"]]


ECHOES = {
    "bare NaN": b"NaN",
    "a list of infinities": b"[Infinity, -Infinity]",
    "the issue's body": b'{"alpha": NaN}',  # every field missing, and alpha non-finite
    "id": _raw(request(4, id=MARK), "-Infinity"),
    "a candidate": _raw(request(4, candidates=[MARK]), "NaN"),
    "the history": _raw(request(4, history=MARK), "NaN"),
    "an unknown field": _raw(request(4, extra={"deep": [MARK]}), "Infinity"),
    "a place": _raw(request(4, next={"day": "Tue", "hour": 9, "place": MARK}), "1e999"),
}


@pytest.mark.parametrize("raw", list(ECHOES.values()), ids=list(ECHOES))
def test_no_error_answer_echoes_what_json_cannot_hold(client, raw):
    r = client.post("/v1/predict", content=raw, headers=JSON)
    assert r.status_code == 422, (r.status_code, r.text)
    detail = _strict(r.text)["detail"]
    assert detail and all(d["loc"][0] == "body" for d in detail)


def test_the_echoed_input_reads_as_what_was_sent(client):
    r = client.post("/v1/predict", content=_raw(request(4, id=MARK), "NaN"), headers=JSON)
    (err,) = _strict(r.text)["detail"]
    assert err["loc"] == ["body", "id"] and err["input"] == "NaN"


@pytest.mark.parametrize("alpha", [1e300, 1e308, 1.7976931348623157e308])
def test_a_huge_finite_alpha_still_answers_finite_probabilities(client, alpha):
    r = client.post("/v1/predict", json=request(4, alpha=alpha, top_k=10))
    assert r.status_code == 200, r.text
    probs = [x["prob"] for x in _strict(r.text)["ranked"]]
    assert all(0 <= p <= 1 for p in probs) and sum(probs) == pytest.approx(1)
    assert _strict(r.text)["prediction"] == "Yoga"  # the rarest behavior: the limit of a huge prior correction
