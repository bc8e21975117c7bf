"""A world for inbound PSP webhooks: a simulator of its own (thread, loopback HTTP) that
signs and POSTs its events to kassa's API served by uvicorn on loopback (on the test loop,
so it shares kassa's pool), both on real PostgreSQL.

The simulator holds every event until a test flushes it (``webhook_hold``) and settles
nothing by itself (``async_delay_ms: null``), so each test decides exactly what arrives,
when, how often and in which order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from kassa import bootstrap
from kassa.api.app import create_app
from kassa.psp.simulator import SimulatorConfig
from kassa.services import merchants
from kassa.services.context import Kassa
from kassa.webhooks import inbound as psp_webhooks
from tests.support.api_server import serving
from tests.support.simulator_server import running_simulator

SECRET = "whsec_sim_test_0123456789abcdef"
DETERMINISTIC = {"webhook_hold": True, "async_delay_ms": None, "capture_mode": "immediate",
                 "refund_mode": "immediate", "webhook_duplicate_rate": 0,
                 "webhook_delay_ms": 0, "webhook_jitter_ms": 0, "latency_ms": 0,
                 "error_rate": 0, "timeout_rate": 0}


@pytest.fixture(scope="module")
def hook_sim_url() -> Iterator[str]:
    with running_simulator(SimulatorConfig(webhook_secret=SECRET, webhook_hold=True,
                                           async_delay_ms=None)) as url:
        yield url


@pytest.fixture(scope="module")
async def hook_kassa(settings, dsn, hook_sim_url) -> AsyncIterator[Kassa]:
    k, close = await bootstrap.build(
        settings.model_copy(update={"simulator_url": hook_sim_url,
                                    "simulator_webhook_secret": SECRET}), dsn, pool_size=12)
    try:
        yield k
    finally:
        await close()


@pytest.fixture(scope="module")
async def hook_api(hook_kassa) -> AsyncIterator[str]:
    """kassa's API over loopback HTTP, where the simulator sends its webhooks."""
    async with serving(create_app(kassa=hook_kassa, key_cache_seconds=0.0)) as url:
        yield url


@dataclass
class World:
    kassa: Kassa
    api: httpx.AsyncClient  # kassa over loopback
    sim: httpx.AsyncClient  # the simulator's control API
    api_url: str
    auth: dict[str, str]
    merchant_id: str

    async def flush(self, order: str = "fifo", *, duplicate: bool = False) -> list[dict]:
        r = await self.sim.post("/_sim/webhooks/flush", json={"order": order,
                                                               "duplicate": duplicate})
        assert r.status_code == 200, r.text
        return r.json()["delivered"]

    async def apply(self) -> int:
        return await psp_webhooks.apply_pending(self.kassa)

    async def configure(self, **changes: Any) -> None:
        r = await self.sim.post("/_sim/config", json=changes)
        assert r.status_code == 200, r.text

    async def held(self) -> list[dict]:
        return [e for e in (await self.sim.get("/_sim/webhooks")).json()
                if e["state"] == "pending"]

    async def pay(self, payment_method: str = "pm_card_visa", amount: int = 10_000,
                  **params: Any) -> dict:
        r = await self.api.post("/v1/payment_intents", headers=self.auth, data={
            "amount": str(amount), "currency": "usd", "payment_method": payment_method,
            "confirm": "true", **{k: str(v) for k, v in params.items()}})
        assert r.status_code == 200, r.text
        return r.json()

    async def authorization(self, pi: dict) -> str:
        """The simulator's authorization id behind a payment."""
        rows = (await self.sim.get("/_sim/authorizations")).json()
        return next(a["id"] for a in rows if a["idempotency_key"] == pi["latest_charge"])

    async def events(self, object_id: str) -> list[str]:
        rows = await self.kassa.pool.fetch(
            "SELECT type FROM events WHERE object_id = $1 ORDER BY seq", object_id)
        return [r["type"] for r in rows]

    async def inbox(self) -> list[dict]:
        rows = await self.kassa.pool.fetch(
            "SELECT psp_event_id, type, sequence, status, result, attempts FROM psp_events"
            " WHERE event->>'psp_reference' = ANY($1::text[]) ORDER BY id",
            [a["id"] for a in (await self.sim.get("/_sim/authorizations")).json()])
        return [dict(r) for r in rows]


@pytest.fixture
async def world(hook_kassa, hook_api, hook_sim_url) -> AsyncIterator[World]:
    async with httpx.AsyncClient(base_url=hook_api) as api, \
            httpx.AsyncClient(base_url=hook_sim_url) as sim:
        await sim.post("/_sim/reset")
        r = await sim.post("/_sim/config", json={
            **DETERMINISTIC, "webhook_url": f"{hook_api}/psp/simulator/webhooks"})
        assert r.status_code == 200, r.text
        m = await merchants.create_merchant(hook_kassa, name="Webhook merchant")
        yield World(kassa=hook_kassa, api=api, sim=sim, api_url=hook_api,
                    auth={"Authorization": f"Bearer {m['secret_key']}"},
                    merchant_id=m["merchant_id"])
        # drain whatever the test left, so the next one starts clean
        await sim.post("/_sim/config", json=DETERMINISTIC)
        while await psp_webhooks.apply_pending(hook_kassa):
            pass
