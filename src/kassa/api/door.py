"""The door every request passes before a router sees it: a bounded body, a URL that is
well-formed (UTF-8, no NUL, no repeated query key), and the last-resort answer to an error
no handler mapped, given on a connection that stays open. (Its Request-Id is given just
outside it, by kassa.api.request_ids.)

A pure ASGI middleware rather than Starlette's ``BaseHTTPMiddleware`` (which buffers and
re-wraps the streams) or an ``Exception`` handler (Starlette answers through it and then
re-raises, so the server drops the kept-alive connection after every 500).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kassa.api import errors
from kassa.domain.errors import InvalidRequest

log = logging.getLogger(__name__)


def check_url(scope: Scope) -> None:
    """Refuse a path or query string that is not UTF-8, holds a NUL, or repeats a key
    (``amount=100&amount=200``: no value may silently win). Keys ending in ``[]`` are
    lists and may repeat."""
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
    try:
        path = unquote_to_bytes(raw_path.split(b"?", 1)[0]).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("The request URL is not valid UTF-8.") from None
    if "\x00" in path:
        raise InvalidRequest("The request URL contains a NUL character.")
    query: bytes = scope.get("query_string") or b""
    if not query:
        return
    try:
        pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True, encoding="utf-8",
                          errors="strict")
    except UnicodeDecodeError:
        raise InvalidRequest("The query string is not valid UTF-8.") from None
    seen: set[str] = set()
    for key, value in pairs:
        if "\x00" in key or "\x00" in value:
            raise InvalidRequest(f"Invalid {key!r}: NUL characters are not allowed.",
                                 param=key.replace("\x00", "") or None)
        if key in seen and not key.endswith("[]"):
            raise InvalidRequest(f"Parameter {key} was given more than once.", param=key)
        seen.add(key)


class Door:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, answer_within: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.answer_within = answer_within

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        late = False  # the door answered for a handler that is still running

        async def send_tracked(message: Message) -> None:
            nonlocal started
            if late:
                return  # the client has its answer already
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        async def answer_late() -> None:
            nonlocal late, started
            if started:
                return
            late = started = True
            log.warning("no answer within %.1f s on %s %s (database or PSP stalled?); "
                        "answered 503, the request runs on", self.answer_within,
                        scope.get("method"), scope.get("path"))
            await _answer(send, errors.RequestTimedOut(self.answer_within))

        # Past the deadline the client is answered 503 while the handler runs on: it is
        # not cancelled, so a saga is never cut between its steps (a retry with the same
        # Idempotency-Key learns the outcome). No task per request: a timer, usually
        # cancelled, starts one only when it fires.
        timers: list[asyncio.Task[None]] = []
        timer = asyncio.get_running_loop().call_later(
            self.answer_within, lambda: timers.append(asyncio.ensure_future(answer_late())))
        try:
            check_url(scope)
            declared = _content_length(scope)
            if declared is not None and declared > self.max_body_bytes:
                raise errors.RequestTooLarge(self.max_body_bytes)
            await self.app(scope, self._bounded(receive), send_tracked)
        except ClientDisconnect:
            return  # the client left while sending its body: nobody to answer
        except Exception as exc:
            if late:
                log.warning("a request answered late then failed on %s %s: %r",
                            scope.get("method"), scope.get("path"), exc)
                return
            if started:
                raise  # part of an answer is out: nothing better than closing is left
            status = errors.for_exception(exc)[0]
            if status == 503:  # one line each: an outage must not bury the log in tracebacks
                log.warning("database unavailable on %s %s: %r", scope.get("method"),
                            scope.get("path"), exc)
            elif status >= 500:
                log.exception("unhandled error on %s %s", scope.get("method"),
                              scope.get("path"))
            started = True  # the deadline's answer must not follow this one
            await _answer(send, exc)
        finally:
            timer.cancel()
            if timers:
                await timers[0]

    def _bounded(self, receive: Receive) -> Receive:
        """``receive`` that counts body bytes and refuses past the limit, so an endless
        (or chunked, undeclared) body is never read whole."""
        limit = self.max_body_bytes
        total = 0

        async def bounded() -> Message:
            nonlocal total
            message = await receive()
            if message["type"] == "http.request":
                total += len(message.get("body", b""))
                if total > limit:
                    raise errors.RequestTooLarge(limit)
            return message

        return bounded


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def _answer(send: Send, exc: BaseException) -> None:
    status, body = errors.render(exc)
    headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json"),
                                          (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in errors.headers_for(exc).items()]
    start: dict[str, Any] = {"type": "http.response.start", "status": status,
                             "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body})
