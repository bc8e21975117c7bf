"""The door on its own, around tiny ASGI apps: what it answers for errors and for handlers
that take too long, and that it never answers twice."""

from __future__ import annotations

import asyncio

import asyncpg
import orjson
import pytest

from kassa.api.door import Door, check_url
from kassa.domain.errors import InvalidRequest


def scope(path: str = "/v1/x", query: bytes = b"", raw_path: bytes | None = None) -> dict:
    return {"type": "http", "method": "GET", "path": path,
            "raw_path": raw_path if raw_path is not None else path.encode(),
            "query_string": query, "headers": []}


async def run(app, *, within: float = 5.0) -> list[dict]:
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await Door(app, max_body_bytes=1024, answer_within=within)(scope(), receive, send)
    return sent


def answer(sent: list[dict]) -> tuple[int, dict[bytes, bytes], dict]:
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) == 1, sent  # exactly one answer
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return starts[0]["status"], dict(starts[0]["headers"]), orjson.loads(body)


async def ok(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def test_an_unexpected_error_is_a_500_and_not_raised_on():
    async def broken(scope, receive, send):
        raise RuntimeError("bug")

    status, _, body = answer(await run(broken))
    assert status == 500 and body["error"]["type"] == "api_error"


@pytest.mark.parametrize("exc", [asyncpg.ConnectionDoesNotExistError("lost"),
                                 asyncpg.CannotConnectNowError("starting up"),
                                 asyncpg.TooManyConnectionsError("full"),
                                 ConnectionRefusedError(111, "refused"), TimeoutError()])
async def test_a_database_outage_is_a_503_with_retry_after(exc):
    async def down(scope, receive, send):
        raise exc

    status, headers, body = answer(await run(down))
    assert status == 503 and headers[b"retry-after"] == b"2"
    assert body["error"]["type"] == "api_error"


async def test_a_statement_error_is_not_an_outage():
    async def refused(scope, receive, send):
        raise asyncpg.UniqueViolationError("duplicate key")

    assert answer(await run(refused))[0] == 500


async def test_an_error_after_the_answer_started_is_raised_for_the_server_to_close():
    async def half(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("mid-answer")

    with pytest.raises(RuntimeError):
        await run(half)


async def test_past_the_deadline_the_client_is_answered_and_the_handler_runs_on():
    finished = asyncio.Event()

    async def slow(scope, receive, send):
        await asyncio.sleep(0.3)
        await ok(scope, receive, send)  # dropped: the client has its answer
        finished.set()

    sent = await run(slow, within=0.1)
    assert finished.is_set()  # not cancelled
    status, headers, body = answer(sent)
    assert status == 503 and headers[b"retry-after"] == b"2"
    assert body["error"]["code"] == "timeout"


async def test_a_late_handler_that_fails_afterwards_is_only_logged():
    async def slow_then_broken(scope, receive, send):
        await asyncio.sleep(0.2)
        raise RuntimeError("later")

    assert answer(await run(slow_then_broken, within=0.05))[0] == 503


async def test_an_answer_in_time_is_passed_through_once():
    status, _, body = answer(await run(ok, within=0.05))
    await asyncio.sleep(0.1)  # the (cancelled) deadline never fires
    assert (status, body) == (200, {})


@pytest.mark.parametrize(("path", "raw_path", "query"), [
    ("/v1/payment_intents/pi_\x00", b"/v1/payment_intents/pi_%00", b""),
    ("/v1/payment_intents/\ufffd", b"/v1/payment_intents/%FF", b""),
    ("/v1/events", b"/v1/events", b"type=%00"),
    ("/v1/events", b"/v1/events", b"type=%E9t%E9"),
    ("/v1/events", b"/v1/events", b"limit=1&limit=2"),
    ("/v1/events", b"/v1/events", b"ty%00pe=x"),
])
def test_check_url_refuses(path, raw_path, query):
    with pytest.raises(InvalidRequest) as exc:
        check_url(scope(path, query, raw_path))
    assert exc.value.code == "parameter_invalid"


@pytest.mark.parametrize("query", [b"", b"limit=3", b"expand[]=a&expand[]=b",
                                   b"type=caf%C3%A9", b"a=&b="])
def test_check_url_accepts(query):
    check_url(scope("/v1/events", query))
