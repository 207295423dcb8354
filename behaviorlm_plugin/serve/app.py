"""The FastAPI app: routes, error answers and the batcher's lifetime. No route takes a path, so no
request can make the server read or write a file."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from behaviorlm_plugin.hparams.serve_args import ServeArguments
from behaviorlm_plugin.serve.batcher import DynamicBatcher, Overloaded, ShuttingDown
from behaviorlm_plugin.serve.predictor import Predictor
from behaviorlm_plugin.serve.prompting import RequestError
from behaviorlm_plugin.serve.schemas import (
    BatchRequest,
    BatchResponse,
    BehaviorInfo,
    BehaviorsResponse,
    ErrorMessage,
    HealthResponse,
    PredictRequest,
    PredictResponse,
    ValidationErrorResponse,
    json_safe,
)
from behaviorlm_plugin.serve.security import BodyLimitMiddleware, request_authorized, unauthorized

log = logging.getLogger(__name__)

_UNAUTHORIZED = {
    401: {
        "model": ErrorMessage,
        "description": "No or a wrong API key (when the server has one).",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}},
    }
}
# Every answer a scoring route gives besides 200 (the OpenAPI schema and the schema-driven tests rely on it).
SCORING_ERRORS = {
    400: {"model": ErrorMessage, "description": "The body is not JSON (or not UTF-8)."},
    **_UNAUTHORIZED,
    413: {"model": ErrorMessage, "description": "Body, history or batch past the server's limits."},
    422: {"model": ValidationErrorResponse, "description": "Bad input; each entry's loc names the field."},
    503: {
        "model": ErrorMessage,
        "description": "The queue is full, or the server is shutting down.",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
    },
    504: {"model": ErrorMessage, "description": "No answer within the server's request timeout."},
}


class _TooLarge(ValueError):
    pass


class _Invalid(ValueError):
    def __init__(self, details: list[dict]) -> None:
        super().__init__(details[0]["msg"])
        self.details = details


def _check_sizes(req: PredictRequest, limit: int, prefix: tuple) -> None:
    if len(req.history) > limit:
        where = ".".join(str(p) for p in (*prefix, "history"))
        raise _TooLarge(f"{where}: {len(req.history)} events; at most {limit} per request")


def create_app(predictor: Predictor, args: ServeArguments, *, api_key: str | None = None) -> FastAPI:
    """An app serving ``predictor`` with the limits of ``args`` (``api_key``: require this bearer token)."""
    batcher = DynamicBatcher(
        predictor.score,
        max_batch=args.max_batch,
        max_wait_s=args.max_wait_ms / 1000,
        max_queue=args.max_queue,
        retry_after_s=args.retry_after_s,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        try:
            yield
        finally:
            await batcher.stop()  # in-flight and queued requests get their answers first

    app = FastAPI(
        title="BehaviorLM", summary="Next-behavior prediction with exact candidate scoring", lifespan=lifespan
    )
    app.state.batcher = batcher
    app.state.predictor = predictor

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if request.url.path.startswith("/v1/") and not request_authorized(request, api_key):
            return unauthorized()
        return await call_next(request)

    app.add_middleware(BodyLimitMiddleware, max_bytes=args.max_body_bytes)
    _add_error_handlers(app, args)

    async def score(reqs: list[PredictRequest], prefix: tuple) -> list[PredictResponse]:
        items, errors = [], []
        for i, req in enumerate(reqs):
            _check_sizes(req, args.max_history_events, (*prefix, i) if prefix else ())
        for i, req in enumerate(reqs):
            try:
                items.append(predictor.prepare(req))
            except RequestError as err:
                errors.append(err.detail(("body", *prefix, i) if prefix else ("body",)))
        if errors:
            raise _Invalid(errors)
        results = await asyncio.wait_for(batcher.submit([s for _, s in items]), args.request_timeout_s)
        return [predictor.respond(req, s, lp) for (req, s), lp in zip(items, results, strict=True)]

    @app.post("/v1/predict", response_model=PredictResponse, responses=SCORING_ERRORS)
    async def predict(body: PredictRequest) -> PredictResponse:
        """Rank the next behavior of one user."""
        return (await score([body], ()))[0]

    @app.post("/v1/predict/batch", response_model=BatchResponse, responses=SCORING_ERRORS)
    async def predict_batch(body: BatchRequest) -> BatchResponse:
        """Rank the next behavior of several users, answered in order."""
        if len(body.requests) > args.max_batch_requests:
            raise _TooLarge(f"requests: {len(body.requests)}; at most {args.max_batch_requests} per call")
        return BatchResponse(responses=await score(body.requests, ("requests",)))

    _add_info_routes(app, predictor, batcher)
    return app


def _add_info_routes(app: FastAPI, predictor: Predictor, batcher: DynamicBatcher) -> None:
    @app.get("/v1/behaviors", response_model=BehaviorsResponse, responses=_UNAUTHORIZED)
    async def behaviors() -> BehaviorsResponse:
        """The candidate behaviors with their anchor/tail category and training prior."""
        m = predictor.manifest
        infos = [
            BehaviorInfo(
                behavior=b,
                anchor_tail=m.anchor_tail[b],
                head_medium_tail=m.head_medium_tail[b],
                train_frequency=m.train_frequency[b],
            )
            for b in m.behaviors
        ]
        return BehaviorsResponse(
            model=predictor.model_id,
            behaviors=infos,
            prompt_formats=m.prompt_formats,
            training_history_len=m.history_len,
        )

    @app.get("/health", response_model=HealthResponse)
    async def health() -> HealthResponse:
        """Liveness and load; open without the API key (it shows no data)."""
        return HealthResponse(
            status="ok",
            model=predictor.model_id,
            queued=batcher.queued,
            running=batcher.running,
            batches=batcher.stats.batches,
            samples=batcher.stats.samples,
        )


def _add_error_handlers(app: FastAPI, args: ServeArguments) -> None:
    @app.exception_handler(RequestValidationError)
    async def malformed(_: Request, err: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes each bad input; a NaN among them would fail the answer itself (a 500).
        details = [{k: json_safe(v) for k, v in e.items()} for e in jsonable_encoder(err.errors())]
        return JSONResponse({"detail": details}, status_code=422)

    @app.exception_handler(_Invalid)
    async def invalid(_: Request, err: _Invalid) -> JSONResponse:
        return JSONResponse({"detail": err.details}, status_code=422)

    @app.exception_handler(_TooLarge)
    async def too_large(_: Request, err: _TooLarge) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=413)

    @app.exception_handler(Overloaded)
    async def overloaded(_: Request, err: Overloaded) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=503, headers={"Retry-After": str(err.retry_after)})

    @app.exception_handler(ShuttingDown)
    async def draining(_: Request, err: ShuttingDown) -> JSONResponse:
        headers = {"Retry-After": str(args.retry_after_s), "Connection": "close"}
        return JSONResponse({"detail": str(err)}, status_code=503, headers=headers)

    @app.exception_handler(Exception)
    async def failed(_: Request, err: Exception) -> JSONResponse:
        log.exception("scoring failed", exc_info=err)
        return JSONResponse({"detail": "internal error while scoring; see the server log"}, status_code=500)

    @app.exception_handler(TimeoutError)
    async def timed_out(_: Request, err: TimeoutError) -> JSONResponse:
        return JSONResponse({"detail": f"no answer within {args.request_timeout_s} s; retry later"}, status_code=504)
