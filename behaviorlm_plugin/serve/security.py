"""Request guards: a body-size cap (413) in front of everything, and an optional bearer key (401)."""

from __future__ import annotations

import hmac
import json

from fastapi import Request
from fastapi.responses import JSONResponse


class BodyLimitMiddleware:
    """Pure ASGI middleware: a body past ``max_bytes`` gets 413 before any parsing (declared or streamed)."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                too_big = False
            if too_big:
                await self._reject(send)
                return
        body, more = [], True
        size = 0
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._reject(send)
                return
            body.append(chunk)
            more = message.get("more_body", False)
        data = b"".join(body)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": data, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, send) -> None:
        body = json.dumps({"detail": f"request body is larger than {self.max_bytes} bytes"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def key_matches(expected: str, authorization: str | None) -> bool:
    """``Authorization: Bearer <key>`` against ``expected``, compared in constant time."""
    if not authorization:
        return False
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.strip().encode("utf-8"), expected.encode("utf-8"))


def unauthorized() -> JSONResponse:
    return JSONResponse(
        {"detail": "missing or wrong API key; send 'Authorization: Bearer <key>'"},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


def request_authorized(request: Request, api_key: str | None) -> bool:
    return api_key is None or key_matches(api_key, request.headers.get("authorization"))
