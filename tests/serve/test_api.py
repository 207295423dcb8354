"""The API's contract with a fake scorer: answers, 422 naming the field, 413, 401, behaviors, health."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serve_fakes import BEHAVIORS, event, make_app, manifest, request


@pytest.fixture()
def client():
    with TestClient(make_app()) as c:
        yield c


def _locs(resp) -> list[list]:
    assert resp.status_code == 422, resp.text
    return [d["loc"] for d in resp.json()["detail"]]


def test_predict_ranks_every_behavior_with_categories(client):
    r = client.post("/v1/predict", json=request(4, top_k=10, id="u1"))
    assert r.status_code == 200, r.text
    body = r.json()
    ranked = body["ranked"]
    assert sorted(x["behavior"] for x in ranked) == sorted(BEHAVIORS)
    assert body["prediction"] == ranked[0]["behavior"] and body["id"] == "u1"
    assert abs(sum(x["prob"] for x in ranked) - 1) < 1e-9
    assert [x["prob"] for x in ranked] == sorted((x["prob"] for x in ranked), reverse=True)
    assert {x["behavior"]: x["anchor_tail"] for x in ranked}["Yoga"] == "tail"
    assert body["short_history"] is False and body["history_events"] == 4 and body["alpha"] == 0.0


def test_short_history_is_served_and_flagged(client):
    body = client.post("/v1/predict", json=request(2)).json()
    assert body["short_history"] is True and body["history_events"] == 2 and body["training_history_len"] == 4


def test_candidate_subset_renormalises(client):
    full = {x["behavior"]: x["prob"] for x in client.post("/v1/predict", json=request(4, top_k=10)).json()["ranked"]}
    sub = client.post("/v1/predict", json=request(4, candidates=["Yoga", "Gaming"])).json()["ranked"]
    assert {x["behavior"] for x in sub} == {"Yoga", "Gaming"}
    total = full["Yoga"] + full["Gaming"]
    for x in sub:
        assert x["prob"] == pytest.approx(full[x["behavior"]] / total, abs=1e-9)


def test_alpha_moves_mass_to_the_rare_behavior(client):
    plain = {x["behavior"]: x["prob"] for x in client.post("/v1/predict", json=request(top_k=10)).json()["ranked"]}
    body = client.post("/v1/predict", json=request(top_k=10, alpha=1.0)).json()
    fixed = {x["behavior"]: x["prob"] for x in body["ranked"]}
    assert body["alpha"] == 1.0
    assert fixed["Yoga"] > plain["Yoga"]
    expected = np.array([plain[b] / manifest().train_frequency[b] for b in BEHAVIORS])
    expected /= expected.sum()
    assert [fixed[b] for b in BEHAVIORS] == pytest.approx(list(expected), abs=1e-9)


def test_timestamps_equal_day_and_hour(client):
    by_ts = request(2)
    by_ts["history"][0] = {"behavior": "Cooking", "timestamp": "2024-03-04T08:00:00+09:00", "place": "home"}  # a Monday
    by_ts["next"] = {"timestamp": "2024-03-05T09:30:00", "place": "office"}
    by_day = request(2)
    by_day["history"][0] = event("Cooking", "Mon", 8)
    a, b = client.post("/v1/predict", json=by_ts).json(), client.post("/v1/predict", json=by_day).json()
    assert a["ranked"] == b["ranked"]


@pytest.mark.parametrize(
    ("mutate", "loc"),
    [
        (lambda b: b["history"][1].update(behavior="Flying"), ["body", "history", 1, "behavior"]),
        (lambda b: b.update(candidates=["Gaming", "Flying"]), ["body", "candidates", 1]),
        (lambda b: b["history"][0].update(hour=24), ["body", "history", 0, "hour"]),
        (lambda b: b["next"].update(day="Funday"), ["body", "next", "day"]),
        (lambda b: b.update(history=[]), ["body", "history"]),
        (lambda b: b.update(history=b["history"] * 2), ["body", "history"]),  # 8 events > the model's 4
        (lambda b: b.update(prompt_format="haiku"), ["body", "prompt_format"]),
        (lambda b: b.update(alpha=-1), ["body", "alpha"]),
        (lambda b: b["history"][2].update(timestamp="2024-13-45T99:00"), ["body", "history", 2]),
        (lambda b: b.update(timezone="Mars/Olympus"), ["body", "timezone"]),
        (lambda b: b.update(path="/etc/passwd"), ["body", "path"]),
    ],
)
def test_bad_input_is_422_naming_the_field(client, mutate, loc):
    body = request(4)
    mutate(body)
    locs = _locs(client.post("/v1/predict", json=body))
    assert any(found[: len(loc)] == loc for found in locs), locs


def test_batch_answers_in_order_and_names_the_bad_request(client):
    reqs = [request(4, id="a"), request(2, id="b", top_k=1)]
    r = client.post("/v1/predict/batch", json={"requests": reqs})
    assert r.status_code == 200, r.text
    out = r.json()["responses"]
    assert [o["id"] for o in out] == ["a", "b"] and len(out[1]["ranked"]) == 1
    single = client.post("/v1/predict", json=reqs[0]).json()
    assert out[0]["ranked"] == single["ranked"][:5]
    bad = request(4)
    bad["history"][3]["behavior"] = "Flying"
    locs = _locs(client.post("/v1/predict/batch", json={"requests": [request(4), bad]}))
    assert locs == [["body", "requests", 1, "history", 3, "behavior"]]


def test_size_limits_are_413():
    with TestClient(make_app(max_body_bytes=2000, max_history_events=3, max_batch_requests=2)) as c:
        assert c.post("/v1/predict", content=b"{" + b" " * 3000 + b"}").status_code == 413
        assert c.post("/v1/predict", json=request(4)).status_code == 413  # 4 events > 3
        assert c.post("/v1/predict/batch", json={"requests": [request(2)] * 3}).status_code == 413
        assert c.post("/v1/predict", json=request(3)).status_code == 200


def test_api_key_is_required_when_set():
    with TestClient(make_app(api_key="s3cret")) as c:
        assert c.post("/v1/predict", json=request()).status_code == 401
        assert c.get("/v1/behaviors", headers={"Authorization": "Bearer nope"}).status_code == 401
        r = c.post("/v1/predict", json=request(), headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200
        assert c.get("/health").status_code == 200  # liveness stays open: it shows no data


def test_behaviors_and_health(client):
    b = client.get("/v1/behaviors").json()
    assert [x["behavior"] for x in b["behaviors"]] == BEHAVIORS
    assert b["prompt_formats"] == ["instruct1", "instruct2"] and b["training_history_len"] == 4
    client.post("/v1/predict", json=request())
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["samples"] == 1 and h["batches"] == 1
    assert h["queued"] == 0 and h["running"] == 0
    assert client.get("/openapi.json").status_code == 200


def test_server_default_alpha_comes_from_the_manifest():
    with TestClient(make_app(m=manifest(prior_correction=0.5))) as c:
        assert c.post("/v1/predict", json=request()).json()["alpha"] == 0.5
    with TestClient(make_app(m=manifest(prior_correction=0.5), alpha=0.0)) as c:
        assert c.post("/v1/predict", json=request()).json()["alpha"] == 0.0
