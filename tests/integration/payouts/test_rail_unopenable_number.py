"""A payout whose bank account's number cannot be opened (its secrets key version was
removed, or the worker has another key) is held for review with the reason, before any bank
call: not retried forever in silence, not failed (the merchant's account is fine once the key
is back), and its money does not move: a pending payout stays pending (the worker checks the
number before moving it to in_transit); one already in transit (the key went away between
that move and the send) stays in transit. Once the key is back and the review resolved, the
worker sends it."""

from __future__ import annotations

import dataclasses

from kassa.db import payouts as payouts_db
from kassa.domain.payouts import PayoutStatus
from kassa.ledger.verify import verify
from kassa.payouts.base import (
    PayoutInstruction,
    PayoutRetryable,
    RailTransfer,
    UnknownTransfer,
)
from kassa.secrets_box import SecretsBox
from kassa.services.payout_rail import advance_due_payouts
from tests.integration.payouts.test_rail_amount_mismatch import (
    NOW_POLICY,
    funded_payout,
    in_transit_balance,
    only_mine,
)


class RecordingRail:
    name = "recording"

    def __init__(self) -> None:
        self.sent: list[PayoutInstruction] = []

    async def send(self, instruction: PayoutInstruction) -> RailTransfer:
        self.sent.append(instruction)
        return RailTransfer(payout_id=instruction.payout_id, rail_reference="tr_1",
                            status=PayoutStatus.IN_TRANSIT, amount=instruction.amount)

    async def get(self, *, payout_id: str) -> RailTransfer:
        if not any(i.payout_id == payout_id for i in self.sent):
            raise UnknownTransfer(payout_id)
        return RailTransfer(payout_id=payout_id, rail_reference="tr_1",
                            status=PayoutStatus.PAID,
                            amount=next(i.amount for i in self.sent
                                        if i.payout_id == payout_id))


async def _merchant_balances(kassa, merchant_id: str) -> list[tuple[str, int]]:
    rows = await kassa.pool.fetch(
        "SELECT account, sum(amount)::bigint AS total FROM ledger_entries"
        " WHERE account LIKE $1 GROUP BY account ORDER BY account", f"merchant:{merchant_id}:%")
    return [(r["account"], r["total"]) for r in rows]


async def test_an_unopenable_number_holds_the_payout_before_the_bank_call(
        client, auth, merchant, kassa):
    mid = merchant["merchant_id"]
    po = await funded_payout(client, auth, kassa, mid)
    await only_mine(kassa, po)
    balances = await _merchant_balances(kassa, mid)
    # a worker whose keys no longer hold the version the number was sealed under
    wrong = dataclasses.replace(kassa, secrets=SecretsBox({7: b"\x01" * 32}))
    rail = RecordingRail()

    await advance_due_payouts(wrong, rail=rail, policy=NOW_POLICY)
    await advance_due_payouts(wrong, rail=rail, policy=NOW_POLICY)  # not due again

    assert rail.sent == []
    async with kassa.pool.acquire() as conn:
        p = await payouts_db.get_payout(conn, merchant_id=mid, payout_id=po)
        row = await conn.fetchrow("SELECT review_reason, next_check_at FROM payouts"
                                  " WHERE id = $1", po)
    assert p is not None and p.status is PayoutStatus.PENDING  # not even booked in transit
    assert row["next_check_at"] is None
    assert "cannot be opened" in row["review_reason"] and "v1" in row["review_reason"]
    assert po in [r["id"] for r in await payouts_db.held_for_review(kassa.pool)]
    assert await in_transit_balance(kassa, mid) == 4000  # as the payout booked it
    assert await _merchant_balances(kassa, mid) == balances  # no money moved
    await kassa.pool.execute("UPDATE payouts SET next_check_at = now() WHERE id = $1", po)
    await advance_due_payouts(wrong, rail=rail, policy=NOW_POLICY)  # even if made due
    assert rail.sent == [] and await _merchant_balances(kassa, mid) == balances
    assert (await verify(kassa.pool)).ok

    # the key is back; the operator resolves the review; the worker sends and follows it
    assert await payouts_db.resolve_review(kassa.pool, payout_id=po,
                                           resolution="ops@example: restored secrets key v1")
    await advance_due_payouts(kassa, rail=rail, policy=NOW_POLICY)
    await advance_due_payouts(kassa, rail=rail, policy=NOW_POLICY)
    assert [i.payout_id for i in rail.sent] == [po]
    async with kassa.pool.acquire() as conn:
        p = await payouts_db.get_payout(conn, merchant_id=mid, payout_id=po)
    assert p is not None and p.status is PayoutStatus.PAID
    assert await in_transit_balance(kassa, mid) == 0
    assert (await verify(kassa.pool)).ok


class FlakyRail(RecordingRail):
    """Books nothing: the send fails retryably, as a bank timeout does."""

    async def send(self, instruction: PayoutInstruction) -> RailTransfer:
        raise PayoutRetryable("the bank timed out")


async def test_an_in_transit_payout_whose_key_went_away_is_held_in_transit(
        client, auth, merchant, kassa):
    mid = merchant["merchant_id"]
    po = await funded_payout(client, auth, kassa, mid)
    await only_mine(kassa, po)
    await advance_due_payouts(kassa, rail=FlakyRail(), policy=NOW_POLICY)  # booked, not sent
    assert await in_transit_balance(kassa, mid) == 4000
    balances = await _merchant_balances(kassa, mid)
    await kassa.pool.execute("UPDATE payouts SET next_check_at = now() WHERE id = $1", po)
    wrong = dataclasses.replace(kassa, secrets=SecretsBox({7: b"\x01" * 32}))
    rail = RecordingRail()
    await advance_due_payouts(wrong, rail=rail, policy=NOW_POLICY)
    assert rail.sent == []
    async with kassa.pool.acquire() as conn:
        p = await payouts_db.get_payout(conn, merchant_id=mid, payout_id=po)
        reason = await conn.fetchval("SELECT review_reason FROM payouts WHERE id = $1", po)
    assert p is not None and p.status is PayoutStatus.IN_TRANSIT
    assert "cannot be opened" in reason
    assert await _merchant_balances(kassa, mid) == balances  # still in transit, nothing else
    assert (await verify(kassa.pool)).ok
