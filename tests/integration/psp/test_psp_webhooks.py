"""Inbound PSP webhooks end to end: the simulator signs and POSTs real webhooks over loopback
to kassa's API on real PostgreSQL. Forged ones are refused and change nothing; duplicates
and out-of-order deliveries never change an outcome twice; concurrent workers apply each
event once."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from kassa import bootstrap
from kassa.ledger.verify import verify
from kassa.psp.simulator import signature
from kassa.services import recovery
from kassa.webhooks import inbound as psp_webhooks
from kassa.workers import loops
from tests.integration.psp.conftest import SECRET, World
from tests.support.recovery import make_due


async def ledger_kinds(world: World, source_id: str) -> list[str]:
    rows = await world.kassa.pool.fetch(
        "SELECT kind FROM ledger_transactions WHERE source_id = $1 ORDER BY id", source_id)
    return [r["kind"] for r in rows]


async def dispute_of(world: World, pi: dict) -> dict | None:
    r = await world.api.get("/v1/disputes", headers=world.auth,
                            params={"payment_intent": pi["id"]})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert len(data) <= 1
    return data[0] if data else None


async def assert_ledger_ok(world: World) -> None:
    report = await verify(world.kassa.pool)
    assert report.ok, report.problems


def signed(body: bytes, *, secret: str = SECRET, at: int | None = None) -> dict[str, str]:
    t = int(time.time()) if at is None else at
    return {signature.HEADER: signature.header(secret, t, body),
            "content-type": "application/json"}


# ------------------------------------------------------------------ signatures


async def test_forged_unsigned_and_replayed_webhooks_are_refused_and_change_nothing(
        world: World):
    pi = await world.pay("pm_card_createDispute")
    auth_id = await world.authorization(pi)
    await world.sim.post(f"/_sim/disputes/{auth_id}/close", json={"outcome": "won"})
    genuine = [e for e in await world.held() if e["type"] == "dispute.created"][0]
    body = orjson.dumps({k: genuine[k] for k in ("id", "object", "type", "created",
                                                  "sequence", "data")})
    tampered = body.replace(b'"needs_response"', b'"lost"')
    assert tampered != body
    url = "/psp/simulator/webhooks"
    now = int(time.time())
    attempts = {
        "unsigned": (body, {"content-type": "application/json"}),
        "wrong secret": (body, signed(body, secret="whsec_attacker")),
        "tampered body": (tampered, signed(body)),
        "replayed (stale)": (body, signed(body, at=now - 3600)),
        "from the future": (body, signed(body, at=now + 3600)),
        "garbage header": (body, {signature.HEADER: "t=abc,v1=zz"}),
    }
    for name, (content, headers) in attempts.items():
        r = await world.api.post(url, content=content, headers=headers)
        assert r.status_code == 400, (name, r.text)
        assert r.json()["error"]["code"] == "webhook_signature_invalid", name
    assert await world.inbox() == []
    assert await world.apply() == 0
    assert await dispute_of(world, pi) is None
    r = await world.api.post("/psp/nope/webhooks", content=body, headers=signed(body))
    assert r.status_code == 404
    # the genuine delivery of the same event is accepted and applied
    r = await world.api.post(url, content=body, headers=signed(body))
    assert (r.status_code, r.json()) == (200, {"received": True, "events": 1,
                                               "duplicates": 0})
    await world.apply()
    assert (await dispute_of(world, pi))["status"] == "needs_response"
    await assert_ledger_ok(world)


async def test_a_signed_event_kassa_does_not_act_on_is_acknowledged(world: World):
    body = orjson.dumps({"id": "simevt_other", "object": "event", "type": "payout.paid",
                         "created": int(time.time()), "sequence": 1, "data": {"object": {}}})
    r = await world.api.post("/psp/simulator/webhooks", content=body, headers=signed(body))
    assert (r.status_code, r.json()["events"]) == (200, 0)
    malformed = b'{"id": "x", "type": "dispute.created"}'
    r = await world.api.post("/psp/simulator/webhooks", content=malformed,
                             headers=signed(malformed))
    assert r.status_code == 400


async def test_oversized_body_is_refused(world: World):
    body = b"{" + b" " * (1024 * 1024 + 10) + b"}"
    r = await world.api.post("/psp/simulator/webhooks", content=body, headers=signed(body))
    assert r.status_code == 413


# ------------------------------------------------------------------ duplicates


async def test_the_same_webhook_twice_is_applied_once(world: World):
    pi = await world.pay("pm_card_createDispute")
    delivered = await world.flush(duplicate=True)
    assert [d["status_code"] for d in delivered] == [200, 200]
    inbox = await world.inbox()
    assert [(e["type"], e["status"]) for e in inbox] == [("dispute.created", "pending")]
    assert await world.apply() == 1
    # a third delivery after it was applied changes nothing either
    event_id = inbox[0]["psp_event_id"]
    r = await world.sim.post(f"/_sim/webhooks/{event_id}/resend")
    assert r.json()["status_code"] == 200
    assert await world.apply() == 0
    dispute = await dispute_of(world, pi)
    assert dispute["status"] == "needs_response"
    assert await ledger_kinds(world, dispute["id"]) == ["dispute"]
    assert await world.events(dispute["id"]) == ["charge.dispute.created",
                                                 "charge.dispute.funds_withdrawn"]
    assert [e["status"] for e in await world.inbox()] == ["applied"]
    await assert_ledger_ok(world)


# ------------------------------------------------------------------ out of order


@pytest.mark.parametrize("outcome", ["lost", "won"])
async def test_dispute_closed_before_created(world: World, outcome: str):
    pi = await world.pay("pm_card_createDispute", amount=5000)
    auth_id = await world.authorization(pi)
    await world.sim.post(f"/_sim/disputes/{auth_id}/close", json={"outcome": outcome})
    delivered = await world.flush("reverse", duplicate=True)
    assert [d["type"] for d in delivered][::2] == ["dispute.closed", "dispute.created"]
    await world.apply()
    dispute = await dispute_of(world, pi)
    assert dispute["status"] == outcome
    expected = ["dispute"] + (["dispute_reversal"] if outcome == "won" else [])
    assert await ledger_kinds(world, dispute["id"]) == expected
    events = ["charge.dispute.created", "charge.dispute.funds_withdrawn",
              "charge.dispute.closed"]
    if outcome == "won":
        events.append("charge.dispute.funds_reinstated")
    assert await world.events(dispute["id"]) == events
    assert [(e["type"], e["status"]) for e in await world.inbox()] == [
        ("dispute.closed", "applied"), ("dispute.created", "ignored")]
    bal = (await world.api.get("/v1/balance", headers=world.auth)).json()
    fee = 1500
    assert bal["available"][0]["amount"] == (0 if outcome == "won" else -(5000 + fee))
    await assert_ledger_ok(world)


async def refund_attempt(world: World, refund_id: str) -> str:
    key = await world.kassa.pool.fetchval("SELECT attempt_id FROM refunds WHERE id = $1",
                                          refund_id)
    assert key is not None
    return str(key)


async def refund_and_payment(world: World, pi: dict, refund_id: str) -> tuple[dict, dict]:
    r = (await world.api.get(f"/v1/refunds/{refund_id}", headers=world.auth)).json()
    p = (await world.api.get(f"/v1/payment_intents/{pi['id']}", headers=world.auth)).json()
    # what kassa counts as refunded: the intent's own column (Stripe shows it on the charge)
    p["amount_refunded"] = await world.kassa.pool.fetchval(
        "SELECT amount_refunded FROM payment_intents WHERE id = $1", pi["id"])
    return r, p


@pytest.mark.parametrize("order", ["fifo", "reverse"])
async def test_pending_refund_that_succeeds_then_bounces(world: World, order: str):
    """refund.succeeded then refund.failed at the PSP; in either delivery order the refund
    ends failed, its amount refundable again, and any posting reversed."""
    await world.configure(refund_mode="pending")
    pi = await world.pay(amount=8000)
    r = await world.api.post("/v1/refunds", headers=world.auth,
                             data={"payment_intent": pi["id"], "amount": "3000"})
    assert r.json()["status"] == "pending"
    refund_id = r.json()["id"]
    key = await refund_attempt(world, refund_id)
    for outcome in ("succeeded", "failed"):
        assert (await world.sim.post(f"/_sim/operations/{key}/settle",
                                     json={"outcome": outcome})).status_code == 200
    await world.flush(order, duplicate=True)
    await world.apply()
    refund, payment = await refund_and_payment(world, pi, refund_id)
    assert refund["status"] == "failed" and refund["failure_reason"] == "unknown"
    assert payment["amount_refunded"] == 0
    kinds = await ledger_kinds(world, refund_id)
    assert kinds == (["refund", "refund_reversal"] if order == "fifo" else [])
    statuses = [(e["type"], e["status"]) for e in await world.inbox()]
    if order == "fifo":
        assert statuses == [("refund.succeeded", "applied"), ("refund.failed", "applied")]
    else:
        assert statuses == [("refund.failed", "applied"), ("refund.succeeded", "ignored")]
    # the released amount can be refunded again
    r = await world.api.post("/v1/refunds", headers=world.auth,
                             data={"payment_intent": pi["id"], "amount": "8000"})
    assert r.status_code == 200, r.text
    await assert_ledger_ok(world)


async def test_pending_refund_failure_releases_the_amount(world: World):
    await world.configure(refund_mode="pending")
    pi = await world.pay(amount=4000)
    before = (await world.api.get("/v1/balance", headers=world.auth)).json()
    refund = (await world.api.post("/v1/refunds", headers=world.auth,
                                   data={"payment_intent": pi["id"]})).json()
    assert refund["status"] == "pending"
    _, payment = await refund_and_payment(world, pi, refund["id"])
    assert payment["amount_refunded"] == 4000  # reserved while pending
    key = await refund_attempt(world, refund["id"])
    await world.sim.post(f"/_sim/operations/{key}/settle", json={"outcome": "failed"})
    await world.flush(duplicate=True)
    assert await world.apply() == 1
    refund, payment = await refund_and_payment(world, pi, refund["id"])
    assert refund["status"] == "failed" and payment["amount_refunded"] == 0
    assert await ledger_kinds(world, refund["id"]) == []
    assert (await world.api.get("/v1/balance", headers=world.auth)).json() == before
    types = await world.kassa.pool.fetch(
        "SELECT type FROM events WHERE object_id = $1 ORDER BY seq", refund["id"])
    assert [t["type"] for t in types] == ["refund.created", "refund.failed", "refund.updated",
                                          "charge.refund.updated"]
    await assert_ledger_ok(world)


async def test_succeeded_refund_that_bounces_later_is_reversed(world: World):
    pi = await world.pay(amount=6000)
    refund = (await world.api.post("/v1/refunds", headers=world.auth,
                                   data={"payment_intent": pi["id"], "amount": "2500"})).json()
    assert refund["status"] == "succeeded"
    key = await refund_attempt(world, refund["id"])
    await world.sim.post(f"/_sim/operations/{key}/settle", json={"outcome": "failed"})
    await world.flush()
    await world.apply()
    refund, payment = await refund_and_payment(world, pi, refund["id"])
    assert refund["status"] == "failed" and payment["amount_refunded"] == 0
    assert await ledger_kinds(world, refund["id"]) == ["refund", "refund_reversal"]
    bts = (await world.api.get("/v1/balance_transactions", headers=world.auth)).json()["data"]
    assert [(b["type"], b["amount"]) for b in bts][:2] == [("refund_failure", 2500),
                                                           ("refund", -2500)]
    assert [(e["type"], e["status"]) for e in await world.inbox()] == [
        ("refund.succeeded", "ignored"), ("refund.failed", "applied")]
    await assert_ledger_ok(world)


# ------------------------------------------------------------------ delayed capture


@pytest.mark.parametrize("outcome", ["succeeded", "failed"])
async def test_delayed_capture_confirmation(world: World, outcome: str):
    await world.configure(capture_mode="pending")
    pi = await world.pay(capture_method="manual", amount=7000)
    r = await world.api.post(f"/v1/payment_intents/{pi['id']}/capture", headers=world.auth,
                             data={"amount_to_capture": "5000"})
    assert r.status_code == 200 and r.json()["status"] == "processing", r.text
    key = await world.kassa.pool.fetchval(
        "SELECT id FROM attempts WHERE payment_intent_id = $1 AND operation = 'capture'",
        pi["id"])
    await world.sim.post(f"/_sim/operations/{key}/settle", json={"outcome": outcome})
    await world.flush(duplicate=True)
    await world.apply()
    got = (await world.api.get(f"/v1/payment_intents/{pi['id']}", headers=world.auth)).json()
    if outcome == "succeeded":
        assert (got["status"], got["amount_received"]) == ("succeeded", 5000)
        assert await ledger_kinds(world, pi["id"]) == ["capture"]
    else:
        assert (got["status"], got["amount_capturable"]) == ("requires_capture", 7000)
        assert await ledger_kinds(world, pi["id"]) == []
    assert [e["status"] for e in await world.inbox()] == ["applied"]
    await assert_ledger_ok(world)


async def test_pending_capture_without_webhook_is_finished_by_recovery(world: World):
    await world.configure(capture_mode="pending")
    pi = await world.pay(capture_method="manual", amount=3000)
    r = await world.api.post(f"/v1/payment_intents/{pi['id']}/capture", headers=world.auth)
    assert r.json()["status"] == "processing"
    # watched: the pending capture, and the hold it captures (until its expiry)
    assert await make_due(world.kassa, pi["id"]) == 2
    await recovery.recover_open_attempts(world.kassa)  # still pending: nothing recorded
    got = (await world.api.get(f"/v1/payment_intents/{pi['id']}", headers=world.auth))
    assert got.json()["status"] == "processing"
    key = await world.kassa.pool.fetchval(
        "SELECT id FROM attempts WHERE payment_intent_id = $1 AND operation = 'capture'",
        pi["id"])
    await world.sim.post(f"/_sim/operations/{key}/settle", json={"outcome": "succeeded"})
    assert await make_due(world.kassa, pi["id"]) == 2  # looked at again after backoff
    await recovery.recover_open_attempts(world.kassa)  # the webhook never came
    got = (await world.api.get(f"/v1/payment_intents/{pi['id']}", headers=world.auth)).json()
    assert got["status"] == "succeeded"
    await world.flush()  # the late webhook is then a no-op
    await world.apply()
    assert [e["status"] for e in await world.inbox()] == ["ignored"]
    assert await ledger_kinds(world, pi["id"]) == ["capture"]
    await assert_ledger_ok(world)


# ------------------------------------------------------------------ deferral


async def test_dispute_before_its_capture_is_recorded_waits(world: World, settings, dsn):
    """The PSP captured (and the card was disputed) but kassa timed out before recording
    the capture: the dispute waits until recovery has recorded it."""
    impatient, close = await bootstrap.build(
        settings.model_copy(update={"simulator_url": str(world.sim.base_url).rstrip("/"),
                                    "psp_timeout_seconds": 0.3,
                                    "simulator_webhook_secret": SECRET}), dsn, pool_size=4)
    impatient.recovery_after_seconds = 0.0
    try:
        await world.configure(timeout_hang_s=1.0)
        await world.sim.post("/_sim/faults", json={"faults": ["timeout_after_charge"]})
        r = await world.api.post("/v1/payment_intents", headers=world.auth, data={
            "amount": "2000", "currency": "usd", "payment_method": "pm_card_createDispute"})
        from kassa.services import payments

        got = await payments.confirm(impatient, merchant_id=world.merchant_id,
                                     payment_id=r.json()["id"])
        assert got["status"] == "processing"
        await world.flush()
        assert await psp_webhooks.apply_next(world.kassa) == "deferred"
        (event,) = await world.inbox()
        assert event["status"] == "pending" and "capture is not recorded" in event["result"]
        await recovery.recover_open_attempts(impatient)
        await asyncio.sleep(0.6)  # the deferral's backoff
        assert await psp_webhooks.apply_next(world.kassa) == "applied"
        assert (await dispute_of(world, got))["status"] == "needs_response"
    finally:
        await close()
    await assert_ledger_ok(world)


# ------------------------------------------------------------------ concurrency


async def test_two_workers_apply_each_event_once(world: World, settings, dsn):
    """Two worker processes (two pools) race over a backlog that holds duplicates and
    out-of-order pairs about the same objects: every event is applied once, and each
    dispute's money moves once."""
    n = 12
    payments_ = [await world.pay("pm_card_createDispute", amount=1000 + i) for i in range(n)]
    for i, pi in enumerate(payments_):
        if i % 2:  # half are decided before anything is delivered
            auth_id = await world.authorization(pi)
            await world.sim.post(f"/_sim/disputes/{auth_id}/close",
                                 json={"outcome": "won" if i % 4 == 1 else "lost"})
    await world.flush("shuffle", duplicate=True)
    workers = []
    for _ in range(2):
        k, close = await bootstrap.build(
            settings.model_copy(update={"simulator_webhook_secret": SECRET}), dsn,
            pool_size=4)
        workers.append((k, close))
    try:
        done = await asyncio.gather(*(psp_webhooks.apply_pending(k, limit=1000)
                                      for k, _ in workers))
    finally:
        for _, close in workers:
            await close()
    inbox = await world.inbox()
    assert sum(done) == len(inbox) == n + n // 2  # duplicates never reached the inbox
    assert all(e["status"] in ("applied", "ignored") for e in inbox)
    for i, pi in enumerate(payments_):
        dispute = await dispute_of(world, pi)
        expected = {0: "needs_response", 1: "won", 3: "lost"}[i % 4 if i % 2 else 0]
        assert dispute["status"] == expected
        kinds = await ledger_kinds(world, dispute["id"])
        assert kinds == (["dispute", "dispute_reversal"] if expected == "won" else ["dispute"])
        assert (await world.events(dispute["id"])).count("charge.dispute.created") == 1
    await assert_ledger_ok(world)


async def test_the_worker_role_applies_webhooks_as_they_arrive(world: World):
    stop = asyncio.Event()
    task = asyncio.create_task(loops.run(world.kassa, roles=("psp-webhooks",), stop=stop,
                                         psp_webhooks_interval=0.05))
    try:
        await world.configure(webhook_hold=False)  # deliver as they happen
        pi = await world.pay("pm_card_createDispute")
        deadline = time.monotonic() + 10
        while (dispute := await dispute_of(world, pi)) is None:
            assert time.monotonic() < deadline, await world.inbox()
            await asyncio.sleep(0.05)
        assert dispute["status"] == "needs_response"
    finally:
        stop.set()
        await task
    await assert_ledger_ok(world)


async def test_jittered_duplicated_deliveries_converge(world: World):
    """The simulator's own chaos knobs: random delays reorder, duplicates repeat; the
    outcome is the same as an orderly delivery."""
    await world.configure(webhook_hold=False, webhook_jitter_ms=50,
                          webhook_duplicate_rate=1.0)
    pis = [await world.pay("pm_card_createDispute", amount=2000) for _ in range(4)]
    for pi in pis:
        await world.sim.post(f"/_sim/disputes/{await world.authorization(pi)}/close",
                             json={"outcome": "won"})
    deadline = time.monotonic() + 10
    while True:
        events = (await world.sim.get("/_sim/webhooks")).json()
        if all(len(e["deliveries"]) >= 2 for e in events) and len(events) == 8:
            break
        assert time.monotonic() < deadline, events
        await asyncio.sleep(0.05)
    await world.apply()
    for pi in pis:
        dispute = await dispute_of(world, pi)
        assert dispute["status"] == "won"
        assert await ledger_kinds(world, dispute["id"]) == ["dispute", "dispute_reversal"]
    bal = (await world.api.get("/v1/balance", headers=world.auth)).json()
    assert bal["available"][0]["amount"] == 0
    await assert_ledger_ok(world)
