"""The merchant's own account (Stripe's ``/v1/account``): read it, and update its payout
settings — ``settings[payouts][schedule]`` (interval, weekly/monthly anchor, delay_days).

The schedule is validated by the domain (domain/payout_schedules.py); an update changes only
the fields given, and an anchor that does not fit the new interval is dropped unless given
(then it is a 400, as at Stripe). ``delay_days`` applies to funds captured from then on
(their ``available_on`` is fixed at capture), as Stripe's does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kassa.db import fx as fx_db
from kassa.db import merchants as merchants_db
from kassa.db import payouts as payouts_db
from kassa.domain import intent_fields
from kassa.domain.errors import InvalidRequest, NotFound
from kassa.domain.payout_schedules import Interval, PayoutSchedule
from kassa.domain.settlement import DEFAULT_DELAY_DAYS
from kassa.representations.accounts import account as render
from kassa.services import fx
from kassa.services.context import Kassa
from kassa.services.uow import IdempotencyHandle, UnitOfWork

SCHEDULE_FIELDS = ("interval", "weekly_anchor", "monthly_anchor", "delay_days")


async def retrieve_account(kassa: Kassa, *, merchant_id: str) -> dict[str, Any]:
    row = await merchants_db.get_merchant(kassa.pool, merchant_id)
    if row is None:
        raise NotFound(f"No such account: '{merchant_id}'", param="account")
    settings = await payouts_db.get_settings(kassa.pool, merchant_id=merchant_id)
    return render(merchant_id=merchant_id, name=row["name"], created=row["created"],
                  payout_schedule=settings.schedule,
                  default_currency=row["settlement_currency"])


def updated_schedule(current: PayoutSchedule, given: Mapping[str, Any]) -> PayoutSchedule:
    """``current`` with the ``given`` fields of Stripe's schedule hash applied."""
    unknown = sorted(set(given) - set(SCHEDULE_FIELDS))
    if unknown:
        raise InvalidRequest(f"Received unknown parameter: settings[payouts][schedule]"
                             f"[{unknown[0]}]", param=f"settings[payouts][schedule][{unknown[0]}]")
    interval = given.get("interval", current.interval.value)
    delay = given.get("delay_days", current.delay_days)
    if delay == "minimum":
        delay = DEFAULT_DELAY_DAYS  # kassa's minimum for card funds, as Stripe's standard
    keep_anchors = interval == current.interval.value
    weekly = given.get("weekly_anchor", current.weekly_anchor if keep_anchors else None)
    monthly = given.get("monthly_anchor", current.monthly_anchor if keep_anchors else None)
    try:
        return PayoutSchedule(interval=Interval(interval) if interval in set(Interval)
                              else interval, delay_days=delay, weekly_anchor=weekly,
                              monthly_anchor=monthly)
    except InvalidRequest as exc:
        raise InvalidRequest(str(exc), param=f"settings[payouts][schedule][{exc.param}]"
                             ) from None


async def update_account(kassa: Kassa, *, merchant_id: str,
                         schedule: Mapping[str, Any] | None = None,
                         default_currency: str | None = None,
                         idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    """``default_currency``: the settlement currency the merchant's balance is kept in
    (domain/fx.py); payments confirmed from then on in another currency are converted.
    ``""`` clears it (each payment settles in its own currency again)."""
    row = await merchants_db.get_merchant(kassa.pool, merchant_id)
    if row is None:
        raise NotFound(f"No such account: '{merchant_id}'", param="account")
    settlement = row["settlement_currency"]
    if default_currency is not None:
        settlement = intent_fields.currency(default_currency, param="default_currency") \
            if default_currency else None
    async with UnitOfWork(kassa, idempotency) as uow:
        conn = await uow.connection()
        if settlement != row["settlement_currency"]:
            await fx_db.set_settlement_currency(conn, merchant_id, settlement)
        settings = await payouts_db.get_settings(conn, merchant_id=merchant_id, for_update=True)
        new = settings.schedule if schedule is None else updated_schedule(
            settings.schedule, schedule)
        await payouts_db.put_schedule(conn, merchant_id=merchant_id, schedule=new)
        obj = render(merchant_id=merchant_id, name=row["name"], created=row["created"],
                     payout_schedule=new, default_currency=settlement)
        uow.emit(merchant_id=merchant_id, type="account.updated", obj=obj)
        await uow.commit(response=obj, resource_id=merchant_id)
    fx.forget_settlement(kassa, merchant_id)
    return obj
