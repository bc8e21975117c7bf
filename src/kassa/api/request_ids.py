"""Every request gets a Request-Id (``req_…``), as at Stripe: bound for the request's duration
(kassa.request_context: the events it causes name it, every line logged meanwhile carries
it), set on every answer (routers', the door's 400/413/503, 404s), and logged with the
request. A merchant request answered with an error is kept in the request log, which the
error's ``request_log_url`` reads back (GET /v1/request_logs/{id}).

Outermost of the app's middleware, so nothing answers without the header. Pure ASGI, like
the door (kassa.api.door), for the same reasons.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kassa import request_context
from kassa.api.access_log import access_log, access_log_enabled
from kassa.services import request_logs
from kassa.services.context import Kassa

HEADER = b"request-id"
LOG_PATH = "/v1/request_logs/"
MAX_LOGGED_BODY = 64 * 1024  # an error body is a few hundred bytes; never keep more


class RequestIds:
    def __init__(self, app: ASGIApp, *, kassa: Callable[[], Kassa | None]) -> None:
        self.app = app
        self.kassa = kassa  # the app's, once its lifespan built it

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_context.new_request_id()
        idempotency_key, host = _key_and_host(scope)
        ctx = request_context.RequestContext(
            id=request_id, idempotency_key=idempotency_key,
            merchant_call=scope["path"].startswith("/v1/"),
            log_url=_base_url(scope, host) + LOG_PATH + request_id)
        token = request_context.bind(ctx)
        began = time.perf_counter()
        status: int | None = None
        body = bytearray()
        logged = False

        async def log_error() -> None:
            nonlocal logged
            kassa = self.kassa()
            if logged or status is None or status < 400 or not ctx.merchant_id or kassa is None:
                return
            logged = True
            await request_logs.record(
                kassa, request_id=request_id, merchant_id=ctx.merchant_id,
                method=scope.get("method", ""), path=scope["path"], status=status,
                idempotency_key=ctx.idempotency_key, error=_error(bytes(body)))

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()),
                                                  (HEADER, request_id.encode())]}
            elif message["type"] == "http.response.body" and status is not None and status >= 400:
                if len(body) < MAX_LOGGED_BODY:
                    body.extend(message.get("body", b"")[:MAX_LOGGED_BODY - len(body)])
                # a 4xx is logged before its last byte leaves, so its request_log_url works
                # the moment the client has it; a 5xx (the database may be what failed) after
                if status < 500 and not message.get("more_body", False):
                    await log_error()
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if access_log_enabled():
                access_log.info("request", method=scope.get("method"), path=scope.get("path"),
                                status=status,
                                duration_ms=round((time.perf_counter() - began) * 1000, 1))
            request_context.unbind(token)
        await log_error()


def _key_and_host(scope: Scope) -> tuple[str | None, str | None]:
    """The Idempotency-Key and Host headers (the first of each), in one pass."""
    key = host = None
    for name, value in scope.get("headers", ()):
        if name == b"idempotency-key":
            if key is None:
                key = bytes(value).decode("latin-1")
        elif name == b"host" and host is None:
            host = bytes(value).decode("latin-1")
    return key, host


def _base_url(scope: Scope, host: str | None) -> str:
    """The scheme and host the client reached kassa at (what it can follow a link to)."""
    if not host:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}"


def _error(body: bytes) -> dict[str, Any] | None:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    return error if isinstance(error, dict) else None
