"""A dispute takes at most what the payment still holds (issue 7 item 7, domain/disputes.py):
a chargeback withdraws the disputed amount bounded by what was captured and not refunded,
the dispute is recorded with the PSP's amount (the merchant can still answer it) and the
bound is flagged; a dispute for more than the charge is refused into the inbox as failed.
Ledger, balance transactions, balances and `kassa ledger verify` at every step."""

from __future__ import annotations

import asyncio

import orjson

from tests.integration.psp.conftest import World
from tests.integration.psp.test_disputes_api import assert_ledger_ok, balance
from tests.integration.psp.test_psp_webhooks import dispute_of, signed

FEE = 1500


async def refund(world: World, pi: dict, amount: int) -> None:
    r = await world.api.post("/v1/refunds", headers=world.auth,
                             data={"payment_intent": pi["id"], "amount": str(amount)})
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text


async def withdrawn(world: World, dispute_id: str) -> int:
    """What the ledger took from the PSP receivable for the dispute, net."""
    return -int(await world.kassa.pool.fetchval(
        "SELECT coalesce(sum(e.amount), 0) FROM ledger_transactions t"
        " JOIN ledger_entries e ON e.transaction_id = t.id"
        " WHERE t.source_id = $1 AND e.account LIKE 'psp:%'", dispute_id))


async def dispute_note(world: World, dispute_psp_id: str) -> list[tuple[str, str | None]]:
    rows = await world.kassa.pool.fetch(
        "SELECT status, result FROM psp_events WHERE object_ref = $1 ORDER BY id",
        dispute_psp_id)
    return [(r["status"], r["result"]) for r in rows]


async def test_refund_during_an_inquiry_bounds_the_chargeback_and_its_reversal(
        world: World):
    """The cardholder's bank opens an inquiry on 40.00, the merchant refunds 10.00, the
    inquiry escalates: the chargeback can only take the 30.00 left, and winning returns
    exactly that."""
    pi = await world.pay(amount=4000)
    auth_id = await world.authorization(pi)
    r = await world.sim.post(f"/_sim/disputes/{auth_id}/open", json={"inquiry": True})
    assert r.status_code == 200, r.text
    await refund(world, pi, 1000)
    r = await world.sim.post(f"/_sim/disputes/{auth_id}/escalate")
    assert r.status_code == 200, r.text
    sim_id = r.json()["id"]
    assert r.json()["amount"] == 4000  # the PSP still reports the whole charge
    await world.flush()
    await world.apply()
    d = await dispute_of(world, pi)
    assert (d["status"], d["amount"]) == ("needs_response", 4000)
    (bt,) = d["balance_transactions"]
    assert (bt["amount"], bt["fee"], bt["net"]) == (-3000, FEE, -(3000 + FEE))
    assert "bounded" in bt["description"]
    assert await withdrawn(world, d["id"]) == 3000
    assert (await balance(world))[0] == -(3000 + FEE + 1000)  # the refund, the chargeback
    status, note = (await dispute_note(world, sim_id))[-1]
    assert status == "applied" and note is not None
    assert "withdrew 3000 of the disputed 4000" in note
    await assert_ledger_ok(world)
    r = await world.api.post(f"/v1/disputes/{d['id']}", headers=world.auth, data={
        "evidence[uncategorized_text]": "winning_evidence", "submit": "true"})
    assert r.status_code == 200, r.text
    await world.flush()
    await world.apply()
    won = (await world.api.get(f"/v1/disputes/{d['id']}", headers=world.auth)).json()
    assert won["status"] == "won"
    assert [(b["amount"], b["fee"]) for b in won["balance_transactions"]] == [
        (-3000, FEE), (3000, -FEE)]
    assert await withdrawn(world, d["id"]) == 0
    assert (await balance(world))[0] == -1000  # only the refund is gone
    await assert_ledger_ok(world)


async def test_a_fully_refunded_payment_loses_only_the_fee_to_a_chargeback(world: World):
    pi = await world.pay(amount=2500)
    auth_id = await world.authorization(pi)
    await world.sim.post(f"/_sim/disputes/{auth_id}/open", json={"inquiry": True})
    await refund(world, pi, 2500)
    await world.sim.post(f"/_sim/disputes/{auth_id}/escalate")
    await world.flush()
    await world.apply()
    d = await dispute_of(world, pi)
    assert (d["status"], d["amount"]) == ("needs_response", 2500)
    (bt,) = d["balance_transactions"]
    assert (bt["amount"], bt["fee"], bt["net"]) == (0, FEE, -FEE)
    assert await withdrawn(world, d["id"]) == 0
    assert (await balance(world))[0] == -(2500 + FEE)
    await assert_ledger_ok(world)


async def test_merchant_conceding_an_inquiry_after_a_refund_loses_only_the_rest(
        world: World):
    pi = await world.pay(amount=4000)
    auth_id = await world.authorization(pi)
    await world.sim.post(f"/_sim/disputes/{auth_id}/open", json={"inquiry": True})
    await world.flush()
    await world.apply()
    await refund(world, pi, 1500)
    d = await dispute_of(world, pi)
    r = await world.api.post(f"/v1/disputes/{d['id']}/close", headers=world.auth)
    assert r.status_code == 200 and r.json()["status"] == "lost", r.text
    (bt,) = r.json()["balance_transactions"]
    assert (bt["amount"], bt["fee"]) == (-2500, FEE)
    assert await withdrawn(world, d["id"]) == 2500
    await assert_ledger_ok(world)


async def tampered_dispute_created(world: World, pi: dict, amount: int) -> str:
    """Deliver the PSP's dispute.created for ``pi`` (held) with another amount, signed."""
    genuine = next(e for e in await world.held() if e["type"] == "dispute.created")
    event = {k: genuine[k] for k in ("id", "object", "type", "created", "sequence", "data")}
    event["data"]["object"]["amount"] = amount
    body = orjson.dumps(event)
    r = await world.api.post("/psp/simulator/webhooks", content=body, headers=signed(body))
    assert r.status_code == 200, r.text
    return str(genuine["data"]["object"]["id"])


async def test_a_chargeback_reported_for_more_than_is_left_is_bounded_at_once(
        world: World):
    """A PSP reporting the whole charge although kassa refunded part of it before the
    dispute: recorded as reported, the withdrawal bounded, the inbox note says so."""
    pi = await world.pay(amount=10_000)
    await refund(world, pi, 3000)
    auth_id = await world.authorization(pi)
    r = await world.sim.post(f"/_sim/disputes/{auth_id}/open", json={})
    assert r.status_code == 200 and r.json()["amount"] == 7000, r.text
    sim_id = await tampered_dispute_created(world, pi, 10_000)
    await world.apply()
    d = await dispute_of(world, pi)
    assert (d["status"], d["amount"]) == ("needs_response", 10_000)
    assert [(b["amount"], b["fee"]) for b in d["balance_transactions"]] == [(-7000, FEE)]
    assert await withdrawn(world, d["id"]) == 7000
    status, note = (await dispute_note(world, sim_id))[-1]
    assert status == "applied" and "withdrew 7000 of the disputed 10000" in str(note)
    await assert_ledger_ok(world)


async def test_a_dispute_for_more_than_the_charge_is_refused_into_the_inbox(world: World):
    """A dispute is for at most the charge amount: a PSP reporting more describes no
    charge kassa recorded. Nothing is posted; an operator sees the failed event."""
    pi = await world.pay("pm_card_createDispute", amount=5000)
    sim_id = await tampered_dispute_created(world, pi, 5001)
    await world.apply()
    assert await dispute_of(world, pi) is None
    ((status, note),) = await dispute_note(world, sim_id)
    assert status == "failed" and "not within the captured 5000" in str(note)
    await assert_ledger_ok(world)


async def test_a_chargeback_waits_for_a_refund_reservation_committing_and_counts_it(
        world: World):
    """Two connections race: a refund's reservation on the payment row is committing while
    the chargeback is applied. The chargeback's share lock waits for it and bounds the
    withdrawal by it, never reading the payment from before the refund."""
    pi = await world.pay(amount=4000)
    auth_id = await world.authorization(pi)
    await world.sim.post(f"/_sim/disputes/{auth_id}/open", json={"inquiry": True})
    await world.flush()
    await world.apply()
    await world.sim.post(f"/_sim/disputes/{auth_id}/escalate")
    await world.flush()  # in kassa's inbox, not applied yet
    async with world.kassa.pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        # what a refund's first step does to the payment (reserve 10.00), not yet committed
        await conn.execute("UPDATE payment_intents SET amount_refunded = amount_refunded"
                           " + 1000 WHERE id = $1", pi["id"])
        applying = asyncio.create_task(world.apply())
        await asyncio.sleep(0.5)
        assert not applying.done(), "the chargeback read the payment under a reservation"
        await tx.commit()
        assert await asyncio.wait_for(applying, 10) == 1
    d = await dispute_of(world, pi)
    assert d["status"] == "needs_response"
    assert [(b["amount"], b["fee"]) for b in d["balance_transactions"]] == [(-3000, FEE)]
    # no refund was really made: put the payment back as it was for the books' check
    await world.kassa.pool.execute("UPDATE payment_intents SET amount_refunded ="
                                   " amount_refunded - 1000 WHERE id = $1", pi["id"])
    await assert_ledger_ok(world)
