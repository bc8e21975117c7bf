"""Adyen's asynchronous modifications end to end, over HTTP against the simulator's Adyen
dialect: each capture, cancel and refund is answered ``received`` with its own
pspReference, which kassa stores on the attempt and matches the notification by; until
then nothing is booked as done. A CAPTURE_FAILED after a booked capture is reversed on the
ledger (held again while the authorisation is valid, else canceled), a REFUND_FAILED gives
the money back to the merchant, a re-dated notification is a new event while an exact
replay is not, a batch with one unsigned item changes nothing, and a repeat Adyen refuses
leaves the outcome to the notification. Every test counts the money at both ends: the
simulator's own books (captured, refunded) against kassa's ledger and balance."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from kassa.ledger.verify import verify
from kassa.psp.adyen.webhooks import signature
from kassa.services import reconciliation_reports, recovery
from kassa.webhooks import inbound as psp_webhooks
from tests.e2e import test_adyen_payments as base
from tests.e2e.test_adyen_payments import ACCOUNT, NEW_KEY, World, with_psp_reference
from tests.support.recovery import make_due

# the Adyen world's fixtures (simulator, kassa, API server), shared with its module
adyen_sim_url, adyen_kassa, adyen_api, world = (
    base.adyen_sim_url, base.adyen_kassa, base.adyen_api, base.world)



async def items(world: World, code: str) -> list[dict[str, Any]]:
    """The notification items the simulator holds for ``code``, as it would POST them."""
    found = []
    for body in await world.held():
        for wrapped in orjson.loads(body)["notificationItems"]:
            if wrapped["NotificationRequestItem"]["eventCode"] == code:
                found.append(wrapped["NotificationRequestItem"])
    return found


def resigned(item: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of a genuine item with ``changes``, signed as Adyen would sign it."""
    out = copy.deepcopy(item)
    out.update(changes)
    out["additionalData"]["hmacSignature"] = signature(out, bytes.fromhex(NEW_KEY))
    return out


def batch(*items: dict[str, Any]) -> bytes:
    return orjson.dumps({"live": "false", "notificationItems": [
        {"NotificationRequestItem": i} for i in items]})


async def apply(world: World) -> None:
    while await psp_webhooks.apply_pending(world.kassa):
        pass


async def retried(world: World) -> None:
    """What a lost compare-and-swap left pending, applied again at once (the worker would,
    after its back-off), until nothing is pending."""
    for _ in range(50):
        await world.kassa.pool.execute(
            "UPDATE psp_events SET available_at = now() WHERE status = 'pending'")
        await apply(world)
        if not await world.kassa.pool.fetchval(
                "SELECT count(*) FROM psp_events WHERE status = 'pending'"):
            return


async def settle(world: World, attempt_id: str, outcome: str) -> None:
    """Have the simulator's books settle (or the scheme reject) the operation kassa sent
    under ``attempt_id`` — Adyen's dialect keys it by account and Idempotency-Key."""
    r = await world.sim.post(f"/_sim/operations/adyen:{ACCOUNT}:{attempt_id}/settle",
                             json={"outcome": outcome})
    assert r.status_code == 200, r.text


async def attempts(world: World, pi: dict[str, Any], operation: str) -> list[dict[str, Any]]:
    rows = await world.kassa.pool.fetch(
        "SELECT id, status, operation_reference, psp_reference, error FROM attempts"
        " WHERE payment_intent_id = $1 AND operation = $2 ORDER BY created_at, id",
        pi["id"], operation)
    return [dict(r) for r in rows]


async def ledger(world: World, pi: dict[str, Any]) -> dict[str, int]:
    """The PSP receivable of everything about this payment: settled (``posted``) and held
    (``pending``), over every ledger transaction its payment, attempts, refunds and
    disputes caused."""
    rows = await world.kassa.pool.fetch(
        "SELECT e.layer, sum(e.amount)::bigint AS total FROM ledger_transactions t"
        " JOIN ledger_entries e ON e.transaction_id = t.id"
        " WHERE e.account = 'psp:adyen:receivable' AND (t.source_id = $1"
        " OR t.source_id IN (SELECT id FROM attempts WHERE payment_intent_id = $1)"
        " OR t.source_id IN (SELECT id FROM refunds WHERE payment_intent_id = $1)"
        " OR t.source_id IN (SELECT id FROM disputes WHERE payment_intent_id = $1))"
        " GROUP BY e.layer", pi["id"])
    out = {"posted": 0, "pending": 0}
    out.update({r["layer"]: int(r["total"]) for r in rows})
    return out


async def balance(world: World) -> int:
    """The merchant's whole balance (available + pending) in EUR, as the API shows it."""
    r = await world.api.get("/v1/balance")
    assert r.status_code == 200, r.text
    body = r.json()
    return sum(b["amount"] for kind in ("available", "pending") for b in body[kind]
               if b["currency"] == "eur")


async def fees(world: World, pi: dict[str, Any]) -> int:
    """kassa's fee revenue from this payment's captures, net of reversals."""
    return -int(await world.kassa.pool.fetchval(
        "SELECT coalesce(sum(e.amount), 0) FROM ledger_transactions t"
        " JOIN ledger_entries e ON e.transaction_id = t.id"
        " WHERE e.account = 'revenue:fees' AND (t.source_id = $1"
        " OR t.source_id IN (SELECT id FROM attempts WHERE payment_intent_id = $1))",
        pi["id"]))


async def both_ends(world: World, pi: dict[str, Any], *, held: int) -> dict[str, Any]:
    """The simulator's books and kassa's ledger and balance agree on this payment."""
    at_adyen = await world.at_adyen(pi)
    money = await ledger(world, pi)
    net = at_adyen["amount_captured"] - at_adyen["amount_refunded"]
    assert money == {"posted": net, "pending": held}, (money, at_adyen)
    assert await balance(world) == net - await fees(world, pi)
    report = await verify(world.kassa.pool)
    assert report.ok, report.problems
    return at_adyen


def later(item: dict[str, Any]) -> str:
    """An eventDate an hour after the item's (a later occurrence, a higher sequence)."""
    when = datetime.fromisoformat(item["eventDate"].replace("Z", "+00:00"))
    return (when + timedelta(hours=1)).isoformat()


def epoch(item: dict[str, Any]) -> int:
    return int(datetime.fromisoformat(item["eventDate"].replace("Z", "+00:00")).timestamp())


async def test_capture_received_is_pending_then_capture_success_matched_by_its_reference(
        world: World) -> None:
    pi = await with_psp_reference(world, await world.pay())
    captured = await world.post(f"/v1/payment_intents/{pi['id']}/capture",
                                amount_to_capture="2000")
    assert captured["status"] == "processing"  # Adyen answered `received`
    [attempt] = await attempts(world, pi, "capture")
    [notification] = await items(world, "CAPTURE")
    # the modification's own pspReference is stored, apart from the payment's
    assert attempt["status"] == "pending"
    assert attempt["operation_reference"] == notification["pspReference"]
    assert attempt["psp_reference"] == notification["originalReference"] == pi["psp_reference"]
    # captured at Adyen's books, not yet booked by kassa: the hold stays, nothing settled
    assert (await world.at_adyen(pi))["amount_captured"] == 2000
    assert await ledger(world, pi) == {"posted": 0, "pending": 2500}
    assert await balance(world) == 0

    # Adyen's schema does not promise merchantReference is the modification's: the
    # notification is matched by the modification's pspReference
    r = await world.send(batch(resigned(notification, merchantReference="not-kassas")))
    assert r.status_code == 200, r.text
    await apply(world)
    done = await world.retrieve(pi)
    assert (done["status"], done["amount_received"]) == ("succeeded", 2000)
    [attempt] = await attempts(world, pi, "capture")
    assert attempt["status"] == "succeeded"
    await both_ends(world, pi, held=0)


async def test_a_notification_naming_another_payment_is_not_applied(world: World) -> None:
    pi = await with_psp_reference(world, await world.pay())
    await world.post(f"/v1/payment_intents/{pi['id']}/capture")
    [notification] = await items(world, "CAPTURE")
    wrong = resigned(notification, originalReference="8800000000000001",
                     eventDate=later(notification))
    r = await world.send(batch(wrong))
    assert r.status_code == 200, r.text
    await apply(world)
    row = await world.kassa.pool.fetchrow(
        "SELECT status, result FROM psp_events WHERE psp = 'adyen' AND psp_event_id = $1",
        f"{wrong['pspReference']}:CAPTURE:true:{epoch(wrong)}")
    assert row["status"] == "ignored" and "names payment 8800000000000001" in row["result"]
    assert (await world.retrieve(pi))["status"] == "processing"
    assert await ledger(world, pi) == {"posted": 0, "pending": 2500}
    await world.deliver()  # the genuine one
    assert (await world.retrieve(pi))["status"] == "succeeded"
    await both_ends(world, pi, held=0)


async def test_capture_failed_after_capture_holds_again_and_a_new_capture_succeeds(
        world: World) -> None:
    pi = await with_psp_reference(world, await world.pay())
    await world.post(f"/v1/payment_intents/{pi['id']}/capture")
    await world.deliver()  # CAPTURE
    assert (await world.retrieve(pi))["status"] == "succeeded"
    await both_ends(world, pi, held=0)
    [first] = await attempts(world, pi, "capture")

    await settle(world, first["id"], "failed")  # the scheme rejects it: CAPTURE_FAILED
    [rejected] = await items(world, "CAPTURE_FAILED")
    assert rejected["pspReference"] == first["operation_reference"]
    await world.deliver()
    again = await world.retrieve(pi)
    assert (again["status"], again["amount_capturable"], again["amount_received"]) == (
        "requires_capture", 2500, 0)
    [first] = await attempts(world, pi, "capture")
    assert first["status"] == "failed"
    # reversed by new entries, the hold posted again; Adyen's books hold it too
    at_adyen = await both_ends(world, pi, held=2500)
    assert (at_adyen["status"], at_adyen["amount_captured"]) == ("authorized", 0)
    kinds = await world.kassa.pool.fetch(
        "SELECT kind FROM ledger_transactions WHERE source_id = $1 ORDER BY id", first["id"])
    assert [k["kind"] for k in kinds] == ["capture_reversal", "authorization_hold"]
    types = [e["type"] for e in (await world.api.get(
        "/v1/events", params={"limit": 100})).json()["data"]]
    assert "payment_intent.amount_capturable_updated" in types

    second = await world.post(f"/v1/payment_intents/{pi['id']}/capture",
                              amount_to_capture="1500")
    assert second["status"] == "processing"
    await world.deliver()
    done = await world.retrieve(pi)
    assert (done["status"], done["amount_received"]) == ("succeeded", 1500)
    at_adyen = await both_ends(world, pi, held=0)
    assert at_adyen["amount_captured"] == 1500

    # and it refunds as any capture does
    refund = await world.post("/v1/refunds", payment_intent=pi["id"], amount="500")
    await world.deliver()
    assert (await world.api.get(f"/v1/refunds/{refund['id']}")).json()["status"] == \
        "succeeded"
    await both_ends(world, pi, held=0)
    # the merchant's settlement report counts what was collected: the reversed capture
    # nets out of gross and fees
    merchant = await world.kassa.pool.fetchval(
        "SELECT merchant_id FROM payment_intents WHERE id = $1", pi["id"])
    today = datetime.now(UTC).date()
    report = await reconciliation_reports.merchant_settlement(
        world.kassa, merchant_id=merchant, start=today - timedelta(days=1), end=today)
    [eur] = report["currencies"]
    assert (eur["charges"], eur["capture_reversals"], eur["gross"], eur["fees"],
            eur["refunds"]) == (2, 1, 1500, await fees(world, pi), 500)


async def test_capture_failed_past_the_authorisation_validity_cancels(world: World) -> None:
    pi = await with_psp_reference(world, await world.pay())
    await world.post(f"/v1/payment_intents/{pi['id']}/capture")
    await world.deliver()
    [capture] = await attempts(world, pi, "capture")
    # the authorisation was made longer ago than the PSP keeps it valid
    await world.kassa.pool.execute(
        "UPDATE attempts SET created_at = now() - interval '8 days' WHERE id = $1",
        pi["latest_charge"])
    await settle(world, capture["id"], "failed")
    await world.deliver()
    done = await world.retrieve(pi)
    assert (done["status"], done["cancellation_reason"], done["amount_received"]) == (
        "canceled", "automatic", 0)
    at_adyen = await both_ends(world, pi, held=0)  # no hold posted again
    assert at_adyen["amount_captured"] == 0
    types = [e["type"] for e in (await world.api.get(
        "/v1/events", params={"limit": 100})).json()["data"]]
    assert "payment_intent.canceled" in types


async def test_a_partial_refund_that_fails_returns_the_money_to_the_merchant(
        world: World) -> None:
    pi = await with_psp_reference(world, await world.pay(capture_method="automatic"))
    await world.deliver()
    refund = await world.post("/v1/refunds", payment_intent=pi["id"], amount="700")
    assert refund["status"] == "pending"  # `received`: nothing booked as refunded yet
    [attempt] = await attempts(world, pi, "refund")
    [notification] = await items(world, "REFUND")
    assert attempt["operation_reference"] == notification["pspReference"]
    assert await ledger(world, pi) == {"posted": 2500, "pending": 0}
    await world.deliver()  # REFUND
    got = (await world.api.get(f"/v1/refunds/{refund['id']}")).json()
    assert got["status"] == "succeeded"
    after_refund = await balance(world)
    await both_ends(world, pi, held=0)

    await settle(world, attempt["id"], "failed")  # REFUND_FAILED: the card did not take it
    [failed] = await items(world, "REFUND_FAILED")
    assert failed["pspReference"] == attempt["operation_reference"]
    await world.deliver()
    got = (await world.api.get(f"/v1/refunds/{refund['id']}")).json()
    assert got["status"] == "failed"
    assert await balance(world) == after_refund + 700
    at_adyen = await both_ends(world, pi, held=0)
    assert at_adyen["amount_refunded"] == 0
    kinds = await world.kassa.pool.fetch(
        "SELECT kind FROM ledger_transactions WHERE source_id = $1 ORDER BY id", refund["id"])
    assert [k["kind"] for k in kinds] == ["refund", "refund_reversal"]  # never an edit
    charge = (await world.api.get(f"/v1/charges/{pi['latest_charge']}")).json()
    assert (charge["amount_refunded"], charge["refunded"]) == (0, False)  # refundable again


async def test_a_pending_refund_that_fails_never_touched_the_ledger(world: World) -> None:
    """Adyen's REFUND_FAILED before any REFUND: the refund was only `received`, so kassa
    booked nothing; it fails and the reserved amount is refundable again."""
    r = await world.sim.post("/_sim/config", json={"refund_mode": "pending",
                                                   "async_delay_ms": None})
    assert r.status_code == 200, r.text
    pi = await with_psp_reference(world, await world.pay(capture_method="automatic"))
    await world.deliver()
    before = await balance(world)
    refund = await world.post("/v1/refunds", payment_intent=pi["id"], amount="900")
    assert refund["status"] == "pending"
    [attempt] = await attempts(world, pi, "refund")
    await settle(world, attempt["id"], "failed")
    [failed] = await items(world, "REFUND_FAILED")
    assert failed["pspReference"] == attempt["operation_reference"]
    await world.deliver()
    got = (await world.api.get(f"/v1/refunds/{refund['id']}")).json()
    assert got["status"] == "failed"
    assert await balance(world) == before
    kinds = await world.kassa.pool.fetch(
        "SELECT kind FROM ledger_transactions WHERE source_id = $1", refund["id"])
    assert kinds == []  # nothing was booked for a refund that never happened
    at_adyen = await both_ends(world, pi, held=0)
    assert (at_adyen["amount_captured"], at_adyen["amount_refunded"]) == (2500, 0)
    again = await world.post("/v1/refunds", payment_intent=pi["id"], amount="2500")
    assert again["status"] == "pending"  # the whole amount is refundable again


async def test_a_replay_is_dropped_and_a_re_dated_notification_is_processed(
        world: World) -> None:
    pi = await with_psp_reference(world, await world.pay(
        capture_method="automatic", payment_method="pm_card_createDispute"))
    [chargeback] = await items(world, "CHARGEBACK")
    await world.deliver()
    (d,) = (await world.api.get("/v1/disputes", params={"payment_intent": pi["id"]})
            ).json()["data"]
    assert d["status"] == "needs_response"
    due = d["evidence_details"]["due_by"]
    withdrawn = await ledger(world, pi)
    inbox = await world.inbox()

    r = await world.send(batch(chargeback))  # an exact replay
    assert r.status_code == 200, r.text
    assert await world.inbox() == inbox  # a duplicate: nothing stored, nothing applied

    # the same chargeback again on a later date (the deadline moved): a new event
    moved = copy.deepcopy(chargeback)
    moved["additionalData"]["defensePeriodEndsAt"] = "2099-01-31T00:00:00+00:00"
    moved = resigned(moved, eventDate=later(chargeback))
    r = await world.send(batch(moved))
    assert r.status_code == 200, r.text
    assert await world.inbox() == inbox + 1
    await apply(world)
    row = await world.kassa.pool.fetchrow(
        "SELECT status FROM psp_events WHERE psp = 'adyen' AND psp_event_id = $1",
        f"{moved['pspReference']}:CHARGEBACK:true:{epoch(moved)}")
    assert row["status"] in ("applied", "ignored")  # processed by the dispute's machine
    got = (await world.api.get(f"/v1/disputes/{d['id']}")).json()
    assert got["evidence_details"]["due_by"] != due
    assert got["evidence_details"]["due_by"] == int(
        datetime.fromisoformat("2099-01-31T00:00:00+00:00").timestamp())
    # the money moved once: the chargeback's withdrawal was not repeated
    assert await ledger(world, pi) == withdrawn
    at_adyen = await world.at_adyen(pi)
    # both ends: captured at Adyen, all of it charged back, nothing left receivable
    assert withdrawn == {"posted": at_adyen["amount_captured"] - d["amount"], "pending": 0}
    report = await verify(world.kassa.pool)
    assert report.ok, report.problems


async def test_a_batch_with_one_unsigned_item_changes_nothing(world: World) -> None:
    pi = await with_psp_reference(world, await world.pay())
    await world.post(f"/v1/payment_intents/{pi['id']}/capture")
    [capture] = await items(world, "CAPTURE")
    unsigned = resigned(capture, eventCode="CAPTURE_FAILED")
    del unsigned["additionalData"]["hmacSignature"]
    before = await world.inbox()
    for order in ([capture, unsigned], [unsigned, capture]):
        r = await world.send(batch(*order))
        assert r.status_code == 400, r.text
    assert await world.inbox() == before
    await apply(world)
    assert (await world.retrieve(pi))["status"] == "processing"
    assert await ledger(world, pi) == {"posted": 0, "pending": 2500}
    assert await balance(world) == 0
    await world.deliver()  # Adyen retries the genuine batch
    assert (await world.retrieve(pi))["status"] == "succeeded"
    await both_ends(world, pi, held=0)


async def test_a_repeat_adyen_refuses_leaves_the_capture_to_its_notification(
        world: World) -> None:
    """Adyen captured, then answered 500; recovery repeats the capture with its key and
    Adyen refuses the repeat (4xx). Adyen reads no modification back, so the refusal says
    nothing about the original: the attempt stays open, never failed, until CAPTURE."""
    pi = await with_psp_reference(world, await world.pay())
    r = await world.sim.post("/_sim/faults", json={"faults": ["error_after_charge"]})
    assert r.status_code == 200, r.text
    await world.post(f"/v1/payment_intents/{pi['id']}/capture")
    [attempt] = await attempts(world, pi, "capture")
    assert attempt["status"] == "unknown"
    r = await world.sim.post("/_sim/faults", json={"faults": ["refuse"]})
    assert r.status_code == 200, r.text
    await make_due(world.kassa, pi["id"])
    await recovery.recover_open_attempts(world.kassa)
    [attempt] = await attempts(world, pi, "capture")
    assert attempt["status"] == "unknown"  # unresolved, not failed by guess
    assert (await world.retrieve(pi))["status"] == "processing"
    assert await ledger(world, pi) == {"posted": 0, "pending": 2500}
    assert (await world.at_adyen(pi))["amount_captured"] == 2500  # Adyen did capture

    await world.deliver()  # CAPTURE settles it
    [attempt] = await attempts(world, pi, "capture")
    assert attempt["status"] == "succeeded"
    assert (await world.retrieve(pi))["status"] == "succeeded"
    await both_ends(world, pi, held=0)


@pytest.mark.parametrize("refund_after_s", [0.0, 0.2])
async def test_a_rejected_capture_racing_a_refund_is_reversed_or_flagged_never_both(
        world: World, refund_after_s: float) -> None:
    """CAPTURE_FAILED is applied while the merchant refunds the same payment (two
    connections: the psp-webhooks worker's and the API's). The payment's compare-and-swap
    lets one win: reversed (the refund is then refused: nothing is captured) or refunded
    (the rejected capture then waits for an operator). Never both, and the books add up."""
    pi = await with_psp_reference(world, await world.pay())
    await world.post(f"/v1/payment_intents/{pi['id']}/capture")
    await world.deliver()
    [capture] = await attempts(world, pi, "capture")
    await settle(world, capture["id"], "failed")
    r = await world.sim.post("/_sim/webhooks/flush", json={})  # stored, not yet applied
    assert r.status_code == 200, r.text

    async def refund() -> int:
        await asyncio.sleep(refund_after_s)  # the worker first, or the merchant first
        got = await world.api.post("/v1/refunds", data={"payment_intent": pi["id"],
                                                        "amount": "500"})
        assert got.status_code in (200, 400), got.text  # a Stripe-shaped 400, never a 500
        return got.status_code

    status, _ = await asyncio.gather(refund(), apply(world))
    await retried(world)
    done = await world.retrieve(pi)
    [capture] = await attempts(world, pi, "capture")
    if status == 400:
        assert (done["status"], capture["status"]) == ("requires_capture", "failed")
        assert await ledger(world, pi) == {"posted": 0, "pending": 2500}
    else:
        assert (done["status"], capture["status"]) == ("succeeded", "needs_attention")
        assert (await ledger(world, pi))["posted"] == 2500  # kept for the operator
    report = await verify(world.kassa.pool)
    assert report.ok, report.problems


async def test_a_rejected_capture_racing_a_chargeback_takes_the_money_once(
        world: World) -> None:
    """CAPTURE_FAILED and a CHARGEBACK of the same payment applied at once by two
    psp-webhooks workers (they are different inbox objects). The reversal locks the payment
    before it looks for disputes, and the chargeback's share lock waits for it (or it for
    the chargeback): either the capture is reversed and the chargeback finds nothing to
    take, or the chargeback takes it and the rejected capture waits for an operator. The
    merchant never loses the money twice."""
    pi = await with_psp_reference(world, await world.pay())
    await world.post(f"/v1/payment_intents/{pi['id']}/capture")
    await world.deliver()
    [capture] = await attempts(world, pi, "capture")
    [auth] = await attempts(world, pi, "authorize")
    other = await world.pay(capture_method="automatic", payment_method="pm_card_createDispute")
    [genuine] = await items(world, "CHARGEBACK")  # the other payment's, as a model
    await settle(world, capture["id"], "failed")
    r = await world.sim.post("/_sim/webhooks/flush", json={})  # stored, not yet applied
    assert r.status_code == 200, r.text
    forged = resigned(genuine, pspReference=genuine["pspReference"] + "X",
                      originalReference=pi["psp_reference"], merchantReference=auth["id"],
                      amount={"value": 2500, "currency": "EUR"})
    assert (await world.send(batch(forged))).status_code == 200
    await asyncio.gather(apply(world), apply(world))
    await retried(world)
    done = await world.retrieve(pi)
    [capture] = await attempts(world, pi, "capture")
    disputes = (await world.api.get("/v1/disputes", params={"payment_intent": pi["id"]})
                ).json()["data"]
    if done["status"] == "requires_capture":  # reversed first: nothing captured to take
        assert capture["status"] == "failed"
        # a chargeback applied after it took nothing (its withdrawal bounded to zero)
        assert all(sum(b["amount"] for b in d["balance_transactions"]) == 0
                   for d in disputes)
    else:  # charged back first: the rejected capture waits for an operator
        assert (done["status"], capture["status"]) == ("succeeded", "needs_attention")
        assert len(disputes) == 1
    # both events were taken up, neither is left pending
    assert not await world.kassa.pool.fetchval(
        "SELECT count(*) FROM psp_events WHERE status = 'pending' AND psp = 'adyen'")
    # captured once, then reversed or charged back once: nothing left, nothing owed twice
    assert (await ledger(world, pi))["posted"] == 0
    assert other["status"] == "succeeded"
    report = await verify(world.kassa.pool)
    assert report.ok, report.problems
