"""The Request-Id middleware around the door: even the door's own answers (a 503 past the
deadline, the last-resort 500) carry the id, and the id is logged with the request."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
from starlette.types import Receive, Scope, Send

from kassa import request_context
from kassa.api.door import Door
from kassa.api.request_ids import RequestIds


async def slow(scope: Scope, receive: Receive, send: Send) -> None:
    await asyncio.sleep(0.3)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"late"})


async def broken(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("a bug")


def stack(app) -> RequestIds:
    return RequestIds(Door(app, max_body_bytes=1024, answer_within=0.05), kassa=lambda: None)


async def get(app, path: str = "/v1/x") -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://kassa.test") as c:
        return await c.get(path)


async def test_the_doors_503_carries_the_request_id(caplog):
    caplog.set_level(logging.CRITICAL, logger="kassa.api.door")
    r = await get(stack(slow))
    assert r.status_code == 503 and r.headers["Request-Id"].startswith("req_")


async def test_the_last_resort_500_carries_the_request_id(caplog):
    caplog.set_level(logging.CRITICAL, logger="kassa.api.door")
    r = await get(stack(broken))
    assert r.status_code == 500 and r.headers["Request-Id"].startswith("req_")


async def test_the_request_is_logged_with_its_id(caplog):
    caplog.set_level(logging.INFO, logger="kassa.api.requests")
    seen: list[request_context.RequestContext | None] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(request_context.current())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    r = await get(stack(app), "/v1/things")
    [line] = [json.loads(rec.getMessage()) for rec in caplog.records
              if rec.name == "kassa.api.requests"]
    assert line["request_id"] == r.headers["Request-Id"] == seen[0].id
    assert (line["event"], line["method"], line["path"], line["status"]) == (
        "request", "GET", "/v1/things", 204)
    assert request_context.current() is None  # unbound after the request


def test_request_ids_look_like_stripes():
    ids = {request_context.new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(i.startswith("req_") and len(i) == 18 and i[4:].isalnum() for i in ids)
