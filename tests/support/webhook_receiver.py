"""A merchant's webhook receiver on loopback (aiohttp, in the test's event loop): answers
with a planned sequence of statuses, can hang until released, and records every request
and how many requests for one delivery were ever open at the same time."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import asyncpg
import httpx
from aiohttp import web
from multidict import CIMultiDict

from kassa.webhooks.backoff import RetrySchedule
from kassa.webhooks.delivery import DeliveryConfig, WebhookSender


@dataclass
class Received:
    body: bytes
    headers: CIMultiDict[str]  # case-insensitive, as HTTP headers are
    at: float  # monotonic arrival time
    status: int | None = None  # what we answered (None: still open, or hung up on)

    @property
    def event_id(self) -> str:
        return self.headers.get("Kassa-Event-Id", "")

    @property
    def delivery_id(self) -> str:
        return self.headers.get("Kassa-Delivery-Id", "")


@dataclass
class WebhookReceiver:
    statuses: Iterable[int] = ()  # answered in order, then ``default_status``
    default_status: int = 200
    delay: float = 0.0  # seconds before answering
    hang: bool = False  # hold every request open until release() (or forever)
    received: list[Received] = field(default_factory=list)
    max_overlap: int = 0  # most requests for one delivery open at once
    url: str = ""

    def __post_init__(self) -> None:
        self._plan = deque(self.statuses)
        self._open: Counter[str] = Counter()
        self._released = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.arrived = asyncio.Event()  # set on every request

    def release(self) -> None:
        self._released.set()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        rec = Received(body, CIMultiDict(request.headers), time.monotonic())
        self.received.append(rec)
        self.arrived.set()
        key = rec.delivery_id
        self._open[key] += 1
        self.max_overlap = max(self.max_overlap, self._open[key])
        try:
            if self.hang:
                await self._released.wait()
            if self.delay:
                await asyncio.sleep(self.delay)
            status = self._plan.popleft() if self._plan else self.default_status
            if request.transport is None or request.transport.is_closing():
                return web.Response(status=status)  # the sender hung up: nobody hears it
            rec.status = status
            return web.Response(status=status, text=f"answered {status}")
        finally:
            self._open[key] -= 1

    async def __aenter__(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None,
                                     shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hooks"
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.release()
        if self._runner is not None:
            await self._runner.cleanup()

    def answered(self, status_range: range = range(200, 300)) -> list[Received]:
        return [r for r in self.received if r.status is not None and r.status in status_range]

    def delivered_event_ids(self) -> set[str]:
        return {r.event_id for r in self.answered()}


# ------------------------------------------------------------------ sender and helpers

FAST = {"timeout_seconds": 2.0, "lease_margin_seconds": 1.0, "poll_interval_seconds": 0.02,
        "sweep_interval_seconds": 0.5}


@asynccontextmanager
async def running_sender(pool: asyncpg.Pool, *, schedule: RetrySchedule | None = None,
                         production: bool = False, **config: Any
                         ) -> AsyncIterator[WebhookSender]:
    """A WebhookSender in this event loop with a compressed configuration, stopped (and its
    open requests finished) on exit."""
    from kassa import bootstrap
    from kassa.config import Settings

    cfg = DeliveryConfig(**{**FAST, **config},
                         schedule=schedule or RetrySchedule(base_seconds=0.05, cap_seconds=0.2,
                                                            window_seconds=60.0),
                         production=production)
    transport = bootstrap.webhook_transport(Settings(env="production" if production else "test"))
    sender = WebhookSender(pool, transport, cfg)
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    try:
        yield sender
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, timeout=cfg.timeout_seconds + 10)
        finally:
            await transport.aclose()


async def eventually(predicate: Callable[[], Awaitable[bool]], *, within: float = 15.0,
                     interval: float = 0.05, what: str = "condition") -> None:
    deadline = time.monotonic() + within
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)


async def create_endpoint(client: httpx.AsyncClient, auth: dict[str, str], url: str,
                          events: list[str] | None = None) -> dict[str, Any]:
    r = await client.post("/v1/webhook_endpoints", headers=auth,
                          json={"url": url, "enabled_events": events or ["*"]})
    assert r.status_code == 200, r.text
    return dict(r.json())


async def pay(client: httpx.AsyncClient, auth: dict[str, str], amount: int = 2000
              ) -> dict[str, Any]:
    """A payment captured at once: events payment_intent.created and .succeeded."""
    r = await client.post("/v1/payment_intents", headers=auth, data={
        "amount": str(amount), "currency": "usd", "payment_method": "pm_card_visa",
        "confirm": "true"})
    assert r.status_code == 200, r.text
    return dict(r.json())


async def deliveries(client: httpx.AsyncClient, auth: dict[str, str], endpoint_id: str,
                     **params: str) -> list[dict[str, Any]]:
    r = await client.get(f"/v1/webhook_endpoints/{endpoint_id}/deliveries", headers=auth,
                         params={"limit": "100", **params})
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


async def delete_endpoints(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """Delete the merchant's endpoints (after a test), so no later sender retries them."""
    r = await client.get("/v1/webhook_endpoints", headers=auth, params={"limit": 100})
    for e in r.json()["data"]:
        await client.delete(f"/v1/webhook_endpoints/{e['id']}", headers=auth)
