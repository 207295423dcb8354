"""Property-based tests drawn from the API's own OpenAPI schema (schemathesis), in-process over ASGI with the
fake scorer: no 500, every answer as the schema declares it, and a JSON ``detail`` on every 4xx. Then each
error answer (401, 413, 422, 503, 504) is made once on purpose and checked against its declaration."""

from __future__ import annotations

import asyncio
import json
import threading

import httpx
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from serve_fakes import FakeScorer, make_app, manifest, wait_for

from behaviorlm_plugin.serve.schemas import EXAMPLE_REQUEST

KEY = "s3cret"
AUTH = {"Authorization": f"Bearer {KEY}"}
# The model knows the behaviors of the schema's own example, so the example and coverage phases get 200s.
NAMES = sorted({e["behavior"] for e in EXAMPLE_REQUEST["history"]} | {"Reading", "Sleeping"})
MODEL = manifest(
    behaviors=NAMES,
    anchor_tail={b: "anchor" for b in NAMES},
    head_medium_tail={b: "head" for b in NAMES},
    train_frequency={b: 1 / len(NAMES) for b in NAMES},
)
LIMITS = dict(max_history_events=6, max_body_bytes=64_000, max_batch_requests=3)
APP = make_app(api_key=KEY, m=MODEL, **LIMITS)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
# Kept small: the four operations take a few seconds together on two shared cores.
schema.config.generation.update(modes=["positive", "negative"], max_examples=25)
# A body that breaks the schema may also be too large: 413 is a rejection too.
schema.config.checks.negative_data_rejection.expected_statuses = ["400", "401", "413", "422"]


@schemathesis.check
def json_detail_on_4xx(ctx, response, case) -> None:
    if 400 <= response.status_code < 500:
        body = json.loads(response.content)
        assert isinstance(body, dict) and body.get("detail"), f"a {response.status_code} without a JSON detail"


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
    json_detail_on_4xx,
]


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_every_answer_is_as_the_schema_declares(case):
    case.call_and_validate(headers=AUTH, checks=CHECKS)


@pytest.mark.parametrize("path", ["/v1/predict", "/v1/predict/batch"])
def test_the_scoring_routes_declare_every_error_they_answer(path):
    declared = APP.openapi()["paths"][path]["post"]["responses"]
    assert {"200", "401", "413", "422", "503", "504"} <= set(declared)
    assert "Retry-After" in declared["503"]["headers"]


def _client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def _load_answers() -> list[httpx.Response]:
    """A 503 (the queue is full behind a held scorer) and a 504 (no answer in time)."""
    out = []
    scorer = FakeScorer(threading.Event())
    app = make_app(scorer, m=MODEL, max_batch=1, max_wait_ms=0, max_queue=1)
    async with app.router.lifespan_context(app), _client(app) as client:
        running = asyncio.create_task(client.post("/v1/predict", json=EXAMPLE_REQUEST))
        await wait_for(scorer.started.is_set, "a batch is running")
        queued = asyncio.create_task(client.post("/v1/predict", json=EXAMPLE_REQUEST))
        await wait_for(lambda: app.state.batcher.queued == 1, "the queue is full")
        out.append(await client.post("/v1/predict", json=EXAMPLE_REQUEST))
        scorer.gate.set()
        await asyncio.gather(running, queued)
    held = FakeScorer(threading.Event())
    app = make_app(held, m=MODEL, max_batch=1, max_wait_ms=0, request_timeout_s=0.05)
    async with app.router.lifespan_context(app), _client(app) as client:
        out.append(await client.post("/v1/predict", json=EXAMPLE_REQUEST))
        held.gate.set()
    return out


def test_each_error_answer_matches_its_declaration():
    operation = schema["/v1/predict"]["POST"]
    client = TestClient(APP)  # no lifespan: none of these three reaches the batcher
    answers = [
        client.post("/v1/predict", json=EXAMPLE_REQUEST),  # no key
        client.post("/v1/predict", content=b"{" + b" " * 70_000 + b"}", headers=AUTH),
        client.post("/v1/predict", content=b'{"alpha": NaN}', headers={**AUTH, "content-type": "application/json"}),
    ]
    answers += asyncio.run(_load_answers())
    assert [r.status_code for r in answers] == [401, 413, 422, 503, 504]
    for r in answers:
        operation.validate_response(r)
        assert r.json()["detail"]
