"""A rail answering with another amount or currency than the payout's is never followed: the
payout is neither marked paid (money that did not leave as booked) nor failed (money back to
the merchant that the bank may have paid); it is held for review with its money in transit,
the worker stops, and after an operator's resolution it follows the rail again."""

from __future__ import annotations

import dataclasses

import pytest

from kassa.db import payouts as payouts_db
from kassa.domain.money import Money
from kassa.domain.payouts import PayoutStatus
from kassa.ledger.verify import verify
from kassa.payouts.base import PayoutInstruction, RailTransfer, UnknownTransfer
from kassa.services import balances
from kassa.services.context import Kassa
from kassa.services.payout_rail import RailPolicy, advance_due_payouts

DAY = 86_400
NOW_POLICY = RailPolicy(poll_s=0.0, backoff_cap_s=0.0)


class SkewedRail:
    """A rail whose records say it moved ``skew`` more than it was asked (a bank's error, a
    wrong file): what kassa sees of a real bank's mistake."""

    name = "skewed"

    def __init__(self) -> None:
        self.transfers: dict[str, RailTransfer] = {}
        self.skew = 1
        self.currency: str | None = None

    async def send(self, instruction: PayoutInstruction) -> RailTransfer:
        amount = Money(instruction.amount.minor + self.skew,
                       self.currency or instruction.amount.currency)
        t = RailTransfer(payout_id=instruction.payout_id,
                         rail_reference=f"tr_{len(self.transfers)}",
                         status=PayoutStatus.IN_TRANSIT, amount=amount)
        self.transfers[instruction.payout_id] = t
        return t

    async def get(self, *, payout_id: str) -> RailTransfer:
        if payout_id not in self.transfers:
            raise UnknownTransfer(payout_id)
        t = self.transfers[payout_id]
        return dataclasses.replace(t, status=PayoutStatus.PAID)


async def funded_payout(client, auth, kassa: Kassa, merchant_id: str) -> str:
    r = await client.post("/v1/payment_intents", headers=auth, data={
        "amount": "10000", "currency": "usd", "payment_method": "pm_card_visa",
        "confirm": "true"})
    assert r.json()["status"] == "succeeded", r.text
    later = dataclasses.replace(kassa, clock=lambda: kassa.clock() + 10 * DAY)
    while await balances.release_available_funds(later):
        pass
    r = await client.post(f"/v1/accounts/{merchant_id}/external_accounts", headers=auth, data={
        "external_account[object]": "bank_account", "external_account[country]": "US",
        "external_account[currency]": "usd",
        "external_account[account_holder_name]": "Jenny Rosen",
        "external_account[routing_number]": "110000000",
        "external_account[account_number]": "000123456789"})
    assert r.status_code == 200, r.text
    r = await client.post("/v1/payouts", headers=auth, data={"amount": "4000",
                                                              "currency": "usd"})
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


async def in_transit_balance(kassa: Kassa, merchant_id: str) -> int:
    return int(await kassa.pool.fetchval(
        "SELECT coalesce(-sum(amount), 0)::bigint FROM ledger_entries WHERE account = $1"
        " AND layer = 'posted'", f"merchant:{merchant_id}:payouts_in_transit"))


async def only_mine(kassa: Kassa, payout_id: str) -> None:
    """Other tests' payouts stay out of this rail."""
    await kassa.pool.execute("UPDATE payouts SET next_check_at = NULL WHERE id <> $1"
                             " AND next_check_at IS NOT NULL", payout_id)


@pytest.mark.parametrize("currency", [None, "eur"])
async def test_a_rail_reporting_another_amount_holds_the_payout(client, auth, merchant, kassa,
                                                                currency):
    mid = merchant["merchant_id"]
    po = await funded_payout(client, auth, kassa, mid)
    await only_mine(kassa, po)
    rail = SkewedRail()
    if currency:
        rail.skew, rail.currency = 0, currency
    await advance_due_payouts(kassa, rail=rail, policy=NOW_POLICY)
    await advance_due_payouts(kassa, rail=rail, policy=NOW_POLICY)  # the bank says "paid"
    async with kassa.pool.acquire() as conn:
        p = await payouts_db.get_payout(conn, merchant_id=mid, payout_id=po)
        row = await conn.fetchrow("SELECT review_reason, next_check_at FROM payouts"
                                  " WHERE id = $1", po)
    assert p is not None and p.status is PayoutStatus.IN_TRANSIT  # neither paid nor failed
    assert row["next_check_at"] is None and "the payout is 40.00 USD" in row["review_reason"]
    assert await in_transit_balance(kassa, mid) == 4000  # still in transit, nowhere else
    assert po in [r["id"] for r in await payouts_db.held_for_review(kassa.pool)]
    assert (await verify(kassa.pool)).ok

    # the bank corrects its record; the operator resolves the review; the worker follows it
    rail.skew, rail.currency = 0, None
    rail.transfers[po] = dataclasses.replace(rail.transfers[po], amount=Money(4000, "usd"))
    assert await payouts_db.resolve_review(kassa.pool, payout_id=po,
                                      resolution="ops@example: bank corrected its file")
    await advance_due_payouts(kassa, rail=rail, policy=NOW_POLICY)
    async with kassa.pool.acquire() as conn:
        p = await payouts_db.get_payout(conn, merchant_id=mid, payout_id=po)
    assert p is not None and p.status is PayoutStatus.PAID
    assert await in_transit_balance(kassa, mid) == 0
    assert (await verify(kassa.pool)).ok
