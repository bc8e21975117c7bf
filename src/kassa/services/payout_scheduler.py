"""Automatic payouts: per merchant, currency and schedule period, exactly one payout of what
became available by the period's start — none doubled when schedulers race or one dies
mid-run, none missed after downtime.

Each pass reads the merchant's watermark (the end of the last finished pass) and makes every
period due since (domain PayoutSchedule.catch_up). A period is claimed by inserting its
``payout_periods`` row, in the same transaction as its payout: a racing scheduler's insert
fails on the primary key and it moves on; a scheduler killed before its commit leaves no
row, so the next pass makes that period. The watermark moves only forward, after the
periods are made. A period with nothing to pay is recorded too (no payout), and the money
that was not positive is carried into the next period.

What a period itemises but cannot pay (the balance was lower, or the payout multiple rounded
it down) is carried on ``payout_carries`` into the next period (domain/payout_amounts.py),
read and written under the merchant-and-currency payout lock: nothing is stranded.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from kassa.db import payouts as payouts_db
from kassa.domain.money import Money
from kassa.domain.payout_amounts import period_payout
from kassa.domain.payout_schedules import Period
from kassa.domain.payouts import Payout, PayoutStatus, create, estimated_arrival
from kassa.ledger import balances as ledger_balances
from kassa.services.context import Kassa
from kassa.services.payouts import queue_money
from kassa.services.uow import UnitOfWork

log = logging.getLogger(__name__)


def _instant(unix: int) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


async def schedule_payouts(kassa: Kassa) -> int:
    """One pass over every automatically paid bank account; returns the payouts made."""
    now = kassa.clock()
    accounts = await payouts_db.scheduled_accounts(kassa.pool)
    made = 0
    finished: dict[str, bool] = {}
    for account in accounts:
        watermark = account.settings.scheduled_through
        periods = account.settings.schedule.catch_up(
            scheduled_through=None if watermark is None else _instant(watermark),
            now=_instant(now))
        if not periods:  # nothing due since the watermark: it may stay where it is (the
            continue     # windows chain), and an idle pass writes nothing
        ok = finished.setdefault(account.merchant_id, True)
        for period in periods:
            try:
                made += await make_period_payout(kassa, account, period)
            except Exception:  # the next pass makes it: its period row was not committed
                log.exception("payout for %s %s %s failed", account.merchant_id,
                              account.currency, period.key)
                ok = False
                break
        finished[account.merchant_id] = ok
    for merchant_id, ok in finished.items():
        if ok:
            async with kassa.pool.acquire() as conn:
                await payouts_db.advance_watermark(conn, merchant_id=merchant_id, through=now)
    return made


async def make_period_payout(kassa: Kassa, account: payouts_db.ScheduledAccount,
                             period: Period) -> int:
    """The period's payout (1), or nothing (0) when another scheduler made it or there was
    nothing to pay — either way the period is recorded once."""
    merchant_id, currency = account.merchant_id, account.currency
    now = kassa.clock()
    async with UnitOfWork(kassa) as uow:
        conn = await uow.connection()
        if not await payouts_db.claim_period(conn, merchant_id=merchant_id, currency=currency,
                                             period_key=period.key, created=now):
            return 0
        await payouts_db.lock_payout_balance(conn, merchant_id=merchant_id, currency=currency)
        rows = await payouts_db.unpaid_balance_transactions(
            conn, merchant_id=merchant_id, currency=currency,
            cutoff=int(period.starts_at.timestamp()))
        itemized = Money(sum(r["net"] for r in rows), currency)
        available = await ledger_balances.available_balance(
            conn, merchant_id=merchant_id, currency=currency)
        carried_in = await payouts_db.carried(conn, merchant_id=merchant_id, currency=currency)
        decision = period_payout(itemized=itemized, carried_in=carried_in, available=available)
        await payouts_db.record_period_amounts(
            conn, merchant_id=merchant_id, currency=currency, period_key=period.key,
            itemized=itemized.minor, carried_in=carried_in.minor,
            carried=decision.carried.minor)
        if not decision.itemise:  # nothing to pay: recorded, and carried into the next period
            await uow.commit(side_effects=False)
            return 0
        amount = decision.amount
        p = Payout(id=kassa.ids("payout"), merchant_id=merchant_id, amount=amount,
                   status=PayoutStatus.PENDING, created=now, arrival_date=estimated_arrival(now),
                   automatic=True, period_key=period.key, destination=account.destination,
                   balance_transaction=kassa.ids("balance_transaction"))
        await payouts_db.insert_payout(conn, p, next_check_in_s=0.0)
        await payouts_db.set_period_payout(conn, merchant_id=merchant_id, currency=currency,
                                           period_key=period.key, payout_id=p.id)
        await payouts_db.attach_balance_transactions(conn, payout_id=p.id,
                                                     ids=[r["id"] for r in rows])
        queue_money(kassa, uow, p, create(merchant_id=merchant_id, amount=amount),
                    bt_id=p.balance_transaction)
        await uow.commit(side_effects=False)
    return 1
