"""Dynamic batching, back-pressure, timeouts and graceful shutdown, with a gated fake scorer (no clocks)."""

from __future__ import annotations

import asyncio
import threading

import httpx
from serve_fakes import FakeScorer, make_app, request, wait_for


def _run(test) -> None:
    async def main():
        gate = threading.Event()
        scorer = FakeScorer(gate)
        app = test.app_for(scorer)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                await test(client, app, scorer, gate)

    asyncio.run(main())


def _with(**limits):
    def deco(fn):
        fn.app_for = lambda scorer: make_app(scorer, **limits)
        return fn

    return deco


def test_concurrent_requests_share_one_scorer_batch():
    @_with(max_batch=4, max_wait_ms=0, max_queue=16)
    async def t(client, app, scorer, gate):
        first = asyncio.create_task(client.post("/v1/predict", json=request(id="0")))
        await wait_for(scorer.started.is_set, "the first batch started")
        rest = [asyncio.create_task(client.post("/v1/predict", json=request(id=str(i)))) for i in range(1, 5)]
        await wait_for(lambda: app.state.batcher.queued == 4, "4 requests queued behind the first")
        health = (await client.get("/health")).json()
        assert (health["queued"], health["running"]) == (4, 1)
        gate.set()
        answers = await asyncio.gather(first, *rest)
        assert [r.status_code for r in answers] == [200] * 5
        assert [r.json()["id"] for r in answers] == [str(i) for i in range(5)]
        assert scorer.batch_sizes == [1, 4]  # the four waiting requests were scored as one batch
        assert app.state.batcher.stats.sizes == [1, 4]
        assert app.state.batcher.running == 0

    _run(t)


def test_max_batch_bounds_a_batch():
    @_with(max_batch=2, max_wait_ms=0, max_queue=16)
    async def t(client, app, scorer, gate):
        first = asyncio.create_task(client.post("/v1/predict", json=request()))
        await wait_for(scorer.started.is_set, "the first batch started")
        rest = [asyncio.create_task(client.post("/v1/predict", json=request())) for _ in range(5)]
        await wait_for(lambda: app.state.batcher.queued == 5, "5 requests queued")
        gate.set()
        assert all(r.status_code == 200 for r in await asyncio.gather(first, *rest))
        assert scorer.batch_sizes == [1, 2, 2, 1]

    _run(t)


def test_full_queue_answers_503_with_retry_after():
    @_with(max_batch=1, max_wait_ms=0, max_queue=2, retry_after_s=3)
    async def t(client, app, scorer, gate):
        running = asyncio.create_task(client.post("/v1/predict", json=request()))
        await wait_for(scorer.started.is_set, "a batch is running")
        queued = [asyncio.create_task(client.post("/v1/predict", json=request())) for _ in range(2)]
        await wait_for(lambda: app.state.batcher.queued == 2, "the queue is full")
        r = await client.post("/v1/predict", json=request())
        assert r.status_code == 503 and r.headers["retry-after"] == "3"
        gate.set()
        assert [x.status_code for x in await asyncio.gather(running, *queued)] == [200, 200, 200]

    _run(t)


def test_a_request_past_its_timeout_is_504_and_dropped_from_the_queue():
    @_with(max_batch=1, max_wait_ms=0, request_timeout_s=0.05)
    async def t(client, app, scorer, gate):
        r = await client.post("/v1/predict", json=request())  # the scorer is held: no answer in time
        assert r.status_code == 504
        late = await client.post("/v1/predict", json=request())
        assert late.status_code == 504
        gate.set()
        await wait_for(lambda: app.state.batcher.queued == 0, "the timed-out job is dropped")
        assert scorer.batch_sizes == [1]  # only the first (already running) request was scored

    _run(t)


def test_graceful_shutdown_finishes_in_flight_requests_and_refuses_new_ones():
    async def main():
        gate = threading.Event()
        scorer = FakeScorer(gate)
        app = make_app(scorer, max_batch=1, max_wait_ms=0)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            lifespan = app.router.lifespan_context(app)
            await lifespan.__aenter__()
            running = asyncio.create_task(client.post("/v1/predict", json=request(id="running")))
            await wait_for(scorer.started.is_set, "a batch is running")
            queued = asyncio.create_task(client.post("/v1/predict", json=request(id="queued")))
            await wait_for(lambda: app.state.batcher.queued == 1, "one more queued")
            stopping = asyncio.create_task(lifespan.__aexit__(None, None, None))
            await asyncio.sleep(0.01)
            assert not stopping.done()  # shutdown waits for the work it accepted
            refused = await client.post("/v1/predict", json=request())
            assert refused.status_code == 503 and "shutting down" in refused.json()["detail"]
            gate.set()
            done = await asyncio.gather(running, queued)
            await stopping
            assert [r.json()["id"] for r in done] == ["running", "queued"]
            assert scorer.batch_sizes == [1, 1]

    asyncio.run(main())


def test_a_failing_batch_mate_does_not_fail_the_others():
    class Picky(FakeScorer):
        def score(self, prompts, candidates):
            if any(len(c) == 2 for c in candidates):
                raise RuntimeError("boom")
            return super().score(prompts, candidates)

    async def main():
        gate = threading.Event()
        scorer = Picky(gate)
        app = make_app(scorer, max_batch=4, max_wait_ms=0)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                first = asyncio.create_task(client.post("/v1/predict", json=request()))
                await wait_for(scorer.started.is_set, "a batch is running")
                good = asyncio.create_task(client.post("/v1/predict", json=request()))
                bad = asyncio.create_task(client.post("/v1/predict", json=request(candidates=["Yoga", "Gaming"])))
                await wait_for(lambda: app.state.batcher.queued == 2, "two queued")
                gate.set()
                r1, r2, r3 = await asyncio.gather(first, good, bad)
                assert (r1.status_code, r2.status_code, r3.status_code) == (200, 200, 500)

    asyncio.run(main())


def test_the_app_serves_again_after_its_lifespan_restarts():
    async def main():
        scorer = FakeScorer()
        app = make_app(scorer, max_batch=1, max_wait_ms=0)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for round_ in range(2):  # as two `with TestClient(app)` blocks, or a test tool, run it
                async with app.router.lifespan_context(app):
                    r = await client.post("/v1/predict", json=request(id=str(round_)))
                    assert r.status_code == 200, r.text
                refused = await client.post("/v1/predict", json=request())
                assert refused.status_code == 503  # between lifespans the server takes no work
        assert scorer.batch_sizes == [1, 1]

    asyncio.run(main())
