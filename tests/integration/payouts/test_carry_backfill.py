"""Migration payoutbits_carry_backfill: a database whose automatic payouts ran before
``payout_carries`` existed (no carry rows, no period sums) gets the carry its payouts left
behind, so the next period pays the money they itemised but could not pay, once; a merchant
whose books need no carry gets none. Written in the old shape: a period paid ``min(itemised,
available)`` and recorded nothing else (the scheduler's own run, its carry then removed)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from alembic import command

from kassa import bootstrap
from kassa.api.app import create_app
from kassa.db.migrate import alembic_config, upgrade
from kassa.domain.money import Money
from kassa.ledger.verify import verify
from kassa.services import merchants, payout_destinations
from kassa.services.context import Kassa
from kassa.services.payout_scheduler import schedule_payouts
from tests.integration.payouts.test_payout_carry import ACCOUNT, DAY, at, available, charge
from tests.support.databases import empty_database


@pytest.fixture
async def own(settings, server_url) -> AsyncIterator[tuple[str, Kassa, httpx.AsyncClient]]:
    """A database of its own (the test migrates it down and up), with kassa on it."""
    with empty_database(server_url, "kassa_carry_backfill") as u:
        await asyncio.to_thread(upgrade, u)
        k, close = await bootstrap.build(settings, u, pool_size=4)
        app = create_app(kassa=k, key_cache_seconds=0.0)
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://kassa.test") as c:
                yield u, k, c
        finally:
            await close()


async def _merchant(kassa: Kassa) -> dict[str, str]:
    m = await merchants.create_merchant(kassa, name="old payouts")
    async with kassa.pool.acquire() as conn:
        await payout_destinations.save_destination(
            kassa, conn, destination_id=kassa.ids("bank_account"),
            merchant_id=m["merchant_id"], account=ACCOUNT, created=0)
    return m


async def test_old_payouts_leave_their_carry_to_the_next_period(own):
    u, kassa, client = own
    now = int(time.time())
    midnight = now // DAY * DAY
    old, plain = await _merchant(kassa), await _merchant(kassa)
    fee = kassa.fees.fee_for(Money(10_000, "usd")).minor
    net = 10_000 - fee
    pi = await charge(client, kassa, old["secret_key"], 10_000, available_on=midnight - 3600)
    r = await client.post("/v1/refunds", headers={"Authorization": f"Bearer {old['secret_key']}"},
                          data={"payment_intent": pi, "amount": "3000"})
    assert r.json()["status"] == "succeeded", r.text  # after the cutoff: itemised next period
    await charge(client, kassa, plain["secret_key"], 10_000, available_on=midnight - 3600)
    assert await schedule_payouts(at(kassa, now + 60)) == 2  # today's periods
    assert await available(kassa, old["merchant_id"]) == 0
    assert await available(kassa, plain["merchant_id"]) == 0
    # the old shape: the period paid min(itemised, available) and kept no carry or sums
    await kassa.pool.execute("DELETE FROM payout_carries")
    await kassa.pool.execute("UPDATE payout_periods SET itemized = NULL, carried_in = NULL,"
                             " carried = NULL")
    await asyncio.to_thread(command.downgrade, alembic_config(u), "payoutbits_sealed_numbers")
    await asyncio.to_thread(upgrade, u)
    carries = await kassa.pool.fetch("SELECT merchant_id, currency, carried FROM payout_carries")
    assert [tuple(c) for c in carries] == [(old["merchant_id"], "usd", 3000)]
    await asyncio.to_thread(upgrade, u)  # again: nothing more
    assert await kassa.pool.fetchval("SELECT sum(carried) FROM payout_carries") == 3000

    # tomorrow's period itemises the refund (-3,000), which the carry covers
    await charge(client, kassa, old["secret_key"], 5_000, available_on=midnight + 3600)
    net2 = 5_000 - kassa.fees.fee_for(Money(5_000, "usd")).minor
    later = dataclasses.replace(kassa, clock=lambda: midnight + DAY + 60)
    await schedule_payouts(later)
    amounts = [r["amount"] for r in await kassa.pool.fetch(
        "SELECT amount FROM payouts WHERE merchant_id = $1 ORDER BY seq", old["merchant_id"])]
    assert amounts == [net - 3000, net2]  # everything that became available, once
    assert await available(kassa, old["merchant_id"]) == 0
    assert await kassa.pool.fetchval("SELECT coalesce(sum(carried), 0) FROM payout_carries") == 0
    assert (await verify(kassa.pool)).ok
