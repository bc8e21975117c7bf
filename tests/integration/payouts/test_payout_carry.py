"""What an automatic payout itemises but cannot pay is carried into the next period: a refund
made after a period's cutoff (it already lowered the balance, and is itemised only next
period) and a payout multiple's rounding never strand money in ``available``."""

from __future__ import annotations

import dataclasses
import time

import pytest

from kassa.domain.bank_accounts import bank_account
from kassa.domain.money import Money
from kassa.ledger.verify import verify
from kassa.services import balances, merchants, payout_destinations
from kassa.services.context import Kassa
from kassa.services.payout_scheduler import schedule_payouts

DAY = 86_400
ACCOUNT = bank_account(account_holder_name="Jenny Rosen", country="US", currency="usd",
                       routing_number="110000000", account_number="000123456789")


def at(kassa: Kassa, unix: int) -> Kassa:
    return dataclasses.replace(kassa, clock=lambda: unix)


async def available(kassa: Kassa, merchant_id: str) -> int:
    return int(await kassa.pool.fetchval(
        "SELECT coalesce(-sum(amount), 0)::bigint FROM ledger_entries WHERE account = $1"
        " AND currency = 'usd' AND layer = 'posted'", f"merchant:{merchant_id}:available"))


@pytest.fixture
async def daily(kassa: Kassa):
    m = await merchants.create_merchant(kassa, name="carried")
    async with kassa.pool.acquire() as conn:
        await payout_destinations.save_destination(
            kassa, conn, destination_id=kassa.ids("bank_account"),
            merchant_id=m["merchant_id"], account=ACCOUNT, created=0)
    yield m
    async with kassa.pool.acquire() as conn:  # the next tests' schedulers leave it alone
        await conn.execute("UPDATE payout_destinations SET default_for_currency = false"
                           " WHERE merchant_id = $1", m["merchant_id"])
        await conn.execute("UPDATE payouts SET next_check_at = NULL WHERE merchant_id = $1",
                           m["merchant_id"])


async def charge(client, kassa: Kassa, key: str, amount: int, *, available_on: int) -> str:
    r = await client.post("/v1/payment_intents", headers={"Authorization": f"Bearer {key}"},
                          data={"amount": str(amount), "currency": "usd",
                                "payment_method": "pm_card_visa", "confirm": "true"})
    assert r.json()["status"] == "succeeded", r.text
    later = at(kassa, kassa.clock() + 30 * DAY)
    while await balances.release_available_funds(later):
        pass
    # the funds became available before the period's cutoff
    await kassa.pool.execute("UPDATE balance_transactions SET available_on = $2"
                             " WHERE source = $1", r.json()["latest_charge"], available_on)
    return str(r.json()["id"])


async def test_a_refund_after_the_cutoff_is_paid_out_next_period(kassa, client, daily):
    key, merchant_id = daily["secret_key"], daily["merchant_id"]
    now = int(time.time())
    midnight = now // DAY * DAY
    pi = await charge(client, kassa, key, 10_000, available_on=midnight - 3600)
    r = await client.post("/v1/refunds", headers={"Authorization": f"Bearer {key}"},
                          data={"payment_intent": pi, "amount": "3000"})
    assert r.json()["status"] == "succeeded", r.text  # after the cutoff: itemised next period
    net = 10_000 - kassa.fees.fee_for(Money(10_000, "usd")).minor
    assert await available(kassa, merchant_id) == net - 3000

    assert await schedule_payouts(at(kassa, now + 60)) >= 1  # today's period
    first = await kassa.pool.fetchrow("SELECT amount FROM payouts WHERE merchant_id = $1",
                                      merchant_id)
    assert first["amount"] == net - 3000
    assert await available(kassa, merchant_id) == 0

    await charge(client, kassa, key, 5_000, available_on=midnight + 3600)
    net2 = 5_000 - kassa.fees.fee_for(Money(5_000, "usd")).minor
    await schedule_payouts(at(kassa, midnight + DAY + 60))  # tomorrow's period
    # the refund is itemised now (-3,000) but was already paid for: the carry covers it
    assert await available(kassa, merchant_id) == 0
    amounts = [r["amount"] for r in await kassa.pool.fetch(
        "SELECT amount FROM payouts WHERE merchant_id = $1 ORDER BY seq", merchant_id)]
    assert amounts == [net - 3000, net2]
    assert sum(amounts) == net - 3000 + net2  # everything that became available, once
    periods = await kassa.pool.fetch(
        "SELECT itemized, carried_in, carried FROM payout_periods WHERE merchant_id = $1"
        " ORDER BY period_key", merchant_id)
    assert [tuple(p) for p in periods] == [(net, 0, 3000), (net2 - 3000, 3000, 0)]
    assert (await verify(kassa.pool)).ok
