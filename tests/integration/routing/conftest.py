"""Two PSP accounts for routing tests: two simulator servers on loopback (threads), wired by
the real composition root as accounts ``simulator`` (A) and ``sim_b`` (B) through
KASSA_SIMULATOR_ACCOUNTS, kassa's API in-process over ASGI, real PostgreSQL.

Counting at both ends: ``World.books`` reads a simulator's own record of the merchant's
authorisations, ``World.kassa_succeeded`` kassa's payments by the account that took them,
``World.receivable`` kassa's ledger per account.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from kassa import bootstrap
from kassa.api.app import create_app
from kassa.config import Settings
from kassa.services import merchants
from kassa.services.context import Kassa
from tests.support.databases import migrated_database
from tests.support.vault import SESSION_SECRETS_KEYS

A, B = "simulator", "sim_b"


@dataclass
class World:
    kassa: Kassa
    api: httpx.AsyncClient
    urls: dict[str, str]
    auth: dict[str, str]
    merchant_id: str
    sims: dict[str, httpx.AsyncClient] = field(default_factory=dict)

    async def route(self, default_route: dict[str, Any],
                    rules: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        r = await self.api.post("/v1/routing_configs", headers=self.auth,
                                json={"rules": rules or [], "default_route": default_route})
        assert r.status_code == 200, r.text
        r = await self.api.post(f"/v1/routing_configs/{r.json()['id']}/activate",
                                headers=self.auth)
        assert r.status_code == 200, r.text
        return r.json()

    async def pay(self, pm: str = "pm_card_visa", amount: int = 1000, currency: str = "usd",
                  **extra: Any) -> httpx.Response:
        return await self.api.post("/v1/payment_intents", headers=self.auth, json={
            "amount": amount, "currency": currency, "payment_method": pm, "confirm": True,
            **extra})

    async def books(self, psp: str) -> list[dict[str, Any]]:
        """The simulator's own authorisations of this merchant (empty if it is down)."""
        try:
            r = await self.sims[psp].get("/_sim/authorizations")
        except httpx.ConnectError:
            return []
        assert r.status_code == 200, r.text
        return [a for a in r.json() if a.get("merchant_id") == self.merchant_id]

    async def attempts(self, payment_id: str) -> list[dict[str, Any]]:
        rows = await self.kassa.pool.fetch(
            "SELECT id, psp, status, error FROM attempts WHERE payment_intent_id = $1"
            " AND operation = 'authorize' ORDER BY created_at, id", payment_id)
        return [dict(r) for r in rows]

    async def kassa_succeeded(self) -> Counter[str]:
        rows = await self.kassa.pool.fetch(
            "SELECT psp, count(*) AS n FROM payment_intents WHERE merchant_id = $1"
            " AND status = 'succeeded' GROUP BY psp", self.merchant_id)
        return Counter({r["psp"]: r["n"] for r in rows})

    async def receivable(self, psp: str) -> int:
        """What kassa's ledger says this account owes for the merchant's captures."""
        value = await self.kassa.pool.fetchval(
            "SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e"
            " JOIN ledger_transactions t ON t.id = e.transaction_id"
            " WHERE t.merchant_id = $1 AND e.account = $2 AND e.layer = 'posted'",
            self.merchant_id, f"psp:{psp}:receivable")
        return int(value)



@pytest.fixture(scope="module")
def dsn(server_url: str) -> Iterator[str]:
    """A database of each module's own: recovery, which these tests run, takes every due
    attempt in its database, and other tests' attempts at other simulators must not be
    counted as (or change) these tests' calls."""
    with migrated_database(server_url, prefix="kassa_routing") as url:
        yield url


@asynccontextmanager
async def routed_world(dsn: str, a_url: str, b_url: str, *,
                       transport: httpx.AsyncBaseTransport | None = None, **settings: Any
                       ) -> AsyncIterator[World]:
    """``transport``: the PSP client's (tests.support.routing_world), else the real one."""
    base = dict(env="test", simulator_url=a_url, simulator_accounts=f"{B}={b_url}",
                secrets_keys=SESSION_SECRETS_KEYS,
                psp_timeout_seconds=5.0,
                api_key_cache_seconds=0.0, routing_cache_seconds=0.0, db_write_batch=1)
    base.update(settings)
    configured = Settings(**base)
    http = None if transport is None else httpx.AsyncClient(
        transport=transport, timeout=configured.psp_timeout_seconds)
    k, close = await bootstrap.build(configured, dsn, pool_size=8, http=http)
    app = create_app(kassa=k, key_cache_seconds=0.0)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://kassa.test") as api, \
                httpx.AsyncClient(base_url=a_url) as sim_a, \
                httpx.AsyncClient(base_url=b_url) as sim_b:
            m = await merchants.create_merchant(k, name="Routing merchant")
            yield World(kassa=k, api=api, urls={A: a_url, B: b_url},
                        auth={"Authorization": f"Bearer {m['secret_key']}"},
                        merchant_id=m["merchant_id"], sims={A: sim_a, B: sim_b})
    finally:
        await close()
        if http is not None:
            await http.aclose()
