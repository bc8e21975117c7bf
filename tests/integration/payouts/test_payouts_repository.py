"""Payout rows on real PostgreSQL: compare-and-swap moves, disjoint claims by racing
workers, one period claimed once by racing schedulers, a watermark that only moves forward,
the payout balance lock, and destinations with one default per currency."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from kassa.db import payouts as payouts_db
from kassa.domain.bank_accounts import MaskedBankAccount, bank_account
from kassa.domain.errors import ConcurrentModification
from kassa.domain.money import Money
from kassa.domain.payout_schedules import Interval, PayoutSchedule
from kassa.domain.payouts import FailureCode, Payout, PayoutStatus, estimated_arrival
from kassa.services import payout_destinations, payout_numbers
from kassa.services.context import Kassa


@pytest.fixture(autouse=True)
async def forget_payouts(kassa: Kassa, merchant):
    """These payouts are rows without their ledger postings: gone after each test, so that
    `kassa ledger verify` in later tests sees only payouts that were really made."""
    yield
    async with kassa.pool.acquire() as conn:
        await conn.execute("DELETE FROM payout_periods WHERE merchant_id = $1",
                           merchant["merchant_id"])
        await conn.execute("DELETE FROM payouts WHERE merchant_id = $1", merchant["merchant_id"])


def new_payout(merchant_id: str, **kwargs) -> Payout:
    pid = f"po_{uuid.uuid4().hex[:20]}"
    return Payout(id=pid, merchant_id=merchant_id, amount=Money(5000, "eur"),
                  status=PayoutStatus.PENDING, created=1_800_000_000,
                  arrival_date=estimated_arrival(1_800_000_000),
                  balance_transaction=f"txn_{pid}", **kwargs)


async def test_insert_get_and_compare_and_swap(kassa: Kassa, merchant):
    mid = merchant["merchant_id"]
    p = new_payout(mid, description="weekly", metadata={"k": "v"})
    async with kassa.pool.acquire() as conn:
        await payouts_db.insert_payout(conn, p)
        assert await payouts_db.get_payout(conn, merchant_id=mid, payout_id=p.id) == p
        assert await payouts_db.get_payout(conn, merchant_id="acct_other", payout_id=p.id) is None
        transit = p.moved(p.move_to(PayoutStatus.IN_TRANSIT), trace_id="bt_1")
        await payouts_db.update_payout(conn, transit, next_check_in_s=60)
        with pytest.raises(ConcurrentModification):  # a second writer from the same read
            await payouts_db.update_payout(conn, p.moved(p.move_to(PayoutStatus.CANCELED),
                                                         failure_balance_transaction="txn_x"),
                                           next_check_in_s=None)
        failed = transit.moved(transit.move_to(PayoutStatus.FAILED,
                                               failure=FailureCode.NO_ACCOUNT),
                               failure_balance_transaction="txn_r")
        await payouts_db.update_payout(conn, failed, next_check_in_s=None)
        assert await payouts_db.get_payout(conn, merchant_id=mid, payout_id=p.id) == failed


async def test_racing_workers_claim_disjoint_batches(kassa: Kassa, merchant):
    mid = merchant["merchant_id"]
    ids = set()
    async with kassa.pool.acquire() as conn:
        for _ in range(12):
            p = new_payout(mid)
            await payouts_db.insert_payout(conn, p)
            ids.add(p.id)
        # only this test's payouts are due (other tests' are not this test's to claim)
        await conn.execute("UPDATE payouts SET next_check_at = NULL WHERE NOT id = ANY($1)",
                           list(ids))

    async def worker() -> set[str]:
        async with kassa.pool.acquire() as conn, conn.transaction():
            claimed = await payouts_db.claim_due_payouts(conn, limit=8, lease_s=30)
            await asyncio.sleep(0.05)  # hold the locks while the other claims
            return {c.id for c in claimed if c.id in ids}

    first, second = await asyncio.gather(worker(), worker())
    assert not first & second and first | second == ids
    async with kassa.pool.acquire() as conn, conn.transaction():  # leased: not due again
        assert not {c.id for c in await payouts_db.claim_due_payouts(conn, limit=50, lease_s=30)
                    } & ids


async def test_a_period_is_claimed_once_by_racing_schedulers(kassa: Kassa, merchant):
    mid = merchant["merchant_id"]

    async def scheduler() -> bool:
        async with kassa.pool.acquire() as conn, conn.transaction():
            won = await payouts_db.claim_period(conn, merchant_id=mid, currency="eur",
                                                period_key="2027-01-15", created=0)
            await asyncio.sleep(0.05)
            return won

    results = await asyncio.gather(*(scheduler() for _ in range(4)))
    assert sorted(results) == [False, False, False, True]


async def test_watermark_only_moves_forward_and_schedule_round_trips(kassa: Kassa, merchant):
    mid = merchant["merchant_id"]
    async with kassa.pool.acquire() as conn:
        assert (await payouts_db.get_settings(conn, merchant_id=mid)).schedule == PayoutSchedule()
        weekly = PayoutSchedule(interval=Interval.WEEKLY, weekly_anchor="friday", delay_days=5)
        await payouts_db.put_schedule(conn, merchant_id=mid, schedule=weekly)
        await payouts_db.advance_watermark(conn, merchant_id=mid, through=200)
        await payouts_db.advance_watermark(conn, merchant_id=mid, through=100)
        got = await payouts_db.get_settings(conn, merchant_id=mid)
        assert (got.schedule, got.scheduled_through) == (weekly, 200)


async def test_the_payout_balance_lock_serialises_one_merchant_and_currency(kassa: Kassa,
                                                                         merchant):
    mid = merchant["merchant_id"]
    order: list[str] = []

    async def payout(name: str, currency: str, hold: float) -> None:
        async with kassa.pool.acquire() as conn, conn.transaction():
            await payouts_db.lock_payout_balance(conn, merchant_id=mid, currency=currency)
            order.append(f"{name}+")
            await asyncio.sleep(hold)
            order.append(f"{name}-")

    first = asyncio.create_task(payout("a", "eur", 0.2))
    await asyncio.sleep(0.05)
    await asyncio.gather(payout("b", "eur", 0), payout("c", "usd", 0))
    await first
    assert order.index("a-") < order.index("b+")  # b waited for a
    assert order.index("c+") < order.index("a-")  # another currency did not


async def test_one_default_destination_per_currency(kassa: Kassa, merchant):
    mid = merchant["merchant_id"]
    first = bank_account(account_holder_name="J", country="DE", currency="eur",
                         iban="DE89370400440532013000")
    second = bank_account(account_holder_name="J", country="GB", currency="eur",
                          iban="GB82WEST12345698765432")
    async with kassa.pool.acquire() as conn:
        assert await payouts_db.default_destination(conn, merchant_id=mid, currency="eur") is None
        await payout_destinations.save_destination(
            kassa, conn, destination_id=f"ba_{uuid.uuid4().hex[:8]}", merchant_id=mid,
            account=first, created=0)
        second_id = f"ba_{uuid.uuid4().hex[:8]}"
        await payout_destinations.save_destination(
            kassa, conn, destination_id=second_id, merchant_id=mid, account=second, created=1)
        assert await payouts_db.default_destination(conn, merchant_id=mid, currency="eur") == (
            second_id, MaskedBankAccount.of(second))
        stored = await payouts_db.get_destination(conn, destination_id=second_id)
        assert (stored.id, stored.merchant_id, stored.account) == (
            second_id, mid, MaskedBankAccount.of(second))
        assert second.iban not in repr(stored)  # sealed: only the rail opens it
        assert payout_numbers.opened(kassa.secrets, destination_id=second_id,
                                      merchant_id=mid, masked=stored.account,
                                      sealed=stored.sealed_number) == second
