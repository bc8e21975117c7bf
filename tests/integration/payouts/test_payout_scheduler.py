"""Automatic payouts over simulated days: two schedulers race every pass, one pass is
killed mid-run, the scheduler is down for days — and each merchant still gets exactly one
period row per day, a payout for each day that had money, every cent that became available
paid out once, and a ledger that verifies."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from kassa.db import payouts as payouts_db
from kassa.domain.bank_accounts import bank_account
from kassa.domain.payout_schedules import Interval, PayoutSchedule
from kassa.ledger.verify import verify
from kassa.services import balances, merchants, payout_destinations
from kassa.services.context import Kassa
from kassa.services.payout_scheduler import schedule_payouts

DAY = 86_400
MERCHANTS = 8
ACCOUNT = bank_account(account_holder_name="Jenny Rosen", country="US", currency="usd",
                       routing_number="110000000", account_number="000123456789")


def at(kassa: Kassa, unix: int) -> Kassa:
    return dataclasses.replace(kassa, clock=lambda: unix)


async def pay(client, key: str, amount: int) -> None:
    r = await client.post("/v1/payment_intents", headers={"Authorization": f"Bearer {key}"},
                          data={"amount": str(amount), "currency": "usd",
                                "payment_method": "pm_card_visa", "confirm": "true"})
    assert r.json()["status"] == "succeeded", r.text


async def release(kassa: Kassa) -> None:
    later = at(kassa, kassa.clock() + 30 * DAY)
    while await balances.release_available_funds(later):
        pass


async def available(kassa: Kassa, merchant_id: str) -> int:
    row = await kassa.pool.fetchval(
        "SELECT coalesce(-sum(amount), 0)::bigint FROM ledger_entries WHERE account = $1"
        " AND currency = 'usd' AND layer = 'posted'", f"merchant:{merchant_id}:available")
    return int(row)


@pytest.fixture
async def scheduled(kassa: Kassa, client):
    """Merchants paid daily to a bank account; the first of them weekly on Wednesdays."""
    made = []
    for i in range(MERCHANTS):
        m = await merchants.create_merchant(kassa, name=f"scheduled {i}")
        async with kassa.pool.acquire() as conn:
            await payout_destinations.save_destination(
                kassa, conn, destination_id=kassa.ids("bank_account"),
                merchant_id=m["merchant_id"], account=ACCOUNT, created=0)
            if i == 0:
                await payouts_db.put_schedule(conn, merchant_id=m["merchant_id"], schedule=
                                              PayoutSchedule(interval=Interval.WEEKLY,
                                                             weekly_anchor="wednesday"))
        made.append(m)
    yield made
    async with kassa.pool.acquire() as conn:  # the next tests' schedulers leave them alone
        ids = [m["merchant_id"] for m in made]
        await conn.execute("UPDATE payout_destinations SET default_for_currency = false"
                           " WHERE merchant_id = ANY($1::text[])", ids)
        await conn.execute("UPDATE payouts SET next_check_at = NULL"  # no worker sends them
                           " WHERE merchant_id = ANY($1::text[])", ids)


async def test_racing_killed_and_down_schedulers_pay_each_period_once(kassa, client,
                                                                      scheduled):
    start = (int(time.time()) // DAY + 2) * DAY  # a midnight after every payment is available
    funded_days = {0, 1, 3, 6, 7}
    down_days = {4, 5}  # nobody runs; day 6 catches up on 4 and 5
    paid_in: dict[str, int] = {m["merchant_id"]: 0 for m in scheduled}
    for day in range(9):
        if day in funded_days:
            for i, m in enumerate(scheduled):
                amount = 1000 + 100 * i + day
                await pay(client, m["secret_key"], amount)
            await release(kassa)
        if day in down_days:
            continue
        clock = at(kassa, start + day * DAY + 3600)
        if day == 2:  # a pass killed mid-run (its open transaction rolls back)
            doomed = asyncio.create_task(schedule_payouts(clock))
            await asyncio.sleep(0.02)
            doomed.cancel()
            await asyncio.gather(doomed, return_exceptions=True)
        made = await asyncio.gather(schedule_payouts(clock), schedule_payouts(clock))
        assert sum(made) <= MERCHANTS * max(1, len(down_days) + 1)
    ids = [m["merchant_id"] for m in scheduled]
    periods = await kassa.pool.fetch(
        "SELECT merchant_id, period_key, payout FROM payout_periods"
        " WHERE merchant_id = ANY($1::text[]) ORDER BY period_key", ids)
    payouts = await kassa.pool.fetch(
        "SELECT merchant_id, period_key, amount FROM payouts WHERE merchant_id = ANY($1::text[])",
        ids)
    days = [time.strftime("%Y-%m-%d", time.gmtime(start + d * DAY)) for d in range(9)]
    for m in ids[1:]:  # daily: one row for every day from the first pass on, none missing
        mine = [r for r in periods if r["merchant_id"] == m]
        assert [r["period_key"] for r in mine] == days
        paid = [r for r in mine if r["payout"] is not None]
        # days 0, 1, 3 and 7 pay what was funded that day; day 6's money (available, as all
        # of it, before any simulated day begins) goes to the oldest period the catch-up
        # makes, day 4; days 2, 5, 6 and 8 are recorded with nothing to pay
        assert [r["period_key"] for r in paid] == [days[d] for d in (0, 1, 3, 4, 7)]
    weekly = [r["period_key"] for r in periods if r["merchant_id"] == ids[0]]
    assert len(weekly) == len(set(weekly)) >= 1
    for m in ids:
        total = sum(r["amount"] for r in payouts if r["merchant_id"] == m)
        paid_in[m] = total
        assert await available(kassa, m) + total == await _captured_net(kassa, m)
    for m in ids[1:]:
        assert await available(kassa, m) == 0  # every cent available by day 8 was paid out
    keys = [(r["merchant_id"], r["period_key"]) for r in payouts]
    assert len(keys) == len(set(keys))
    contents = await kassa.pool.fetch(
        "SELECT p.id, p.amount, coalesce(sum(b.net), 0)::bigint AS items FROM payouts p"
        " LEFT JOIN balance_transactions b ON b.payout = p.id"
        " WHERE p.merchant_id = ANY($1::text[]) GROUP BY p.id, p.amount", ids)
    assert all(r["amount"] == r["items"] for r in contents)  # itemised exactly
    # and as the API lists them (GET /v1/balance_transactions?payout=…)
    m = scheduled[1]
    po = await kassa.pool.fetchrow("SELECT id, amount FROM payouts WHERE merchant_id = $1"
                                   " ORDER BY seq LIMIT 1", m["merchant_id"])
    r = await client.get("/v1/balance_transactions", params={"payout": po["id"], "limit": 100},
                         headers={"Authorization": f"Bearer {m['secret_key']}"})
    assert r.status_code == 200, r.text
    assert sum(b["net"] for b in r.json()["data"]) == po["amount"]
    assert {b["type"] for b in r.json()["data"]} == {"charge"}
    assert (await verify(kassa.pool)).ok


async def _captured_net(kassa: Kassa, merchant_id: str) -> int:
    return int(await kassa.pool.fetchval(
        "SELECT coalesce(sum(net), 0)::bigint FROM balance_transactions WHERE merchant_id = $1"
        " AND type <> 'payout'", merchant_id))
