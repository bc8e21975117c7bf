"""Issue 7: no money moved at the PSP that kassa's books do not know about, and no payment
stuck where no call can move it. Each test counts money at both ends: the simulator's own
record of what it authorised, captured, voided and refunded against kassa's ledger."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx

from kassa.db import payments as payments_db
from kassa.ledger.verify import verify
from kassa.services import recovery
from tests.integration.psp.conftest import World
from tests.support.recovery import make_due


async def sim_auth(world: World, pi: dict) -> dict:
    rows = (await world.sim.get("/_sim/authorizations")).json()
    return next(a for a in rows if a["idempotency_key"] == pi["latest_charge"])


async def get_pi(world: World, pi: dict) -> dict:
    r = await world.api.get(f"/v1/payment_intents/{pi['id']}", headers=world.auth)
    assert r.status_code == 200, r.text
    return r.json()


async def ledger_kinds(world: World, pi: dict) -> list[str]:
    rows = await world.kassa.pool.fetch(
        "SELECT kind FROM ledger_transactions WHERE source_id = ANY($1::text[]) ORDER BY id",
        [pi["id"], pi["latest_charge"]])
    return [r["kind"] for r in rows]


async def customer_completes(world: World, pi: dict, result: str = "succeed", *,
                             come_back: bool = True) -> httpx.Response | None:
    """The customer on the simulator's 3-D Secure page; ``come_back``: their browser
    follows the redirect to kassa's return endpoint."""
    url = pi["next_action"]["redirect_to_url"]["url"]
    async with httpx.AsyncClient() as browser:
        r = await browser.post(url + "/complete", data={"result": result})
    assert r.status_code == 303, r.text
    if not come_back:
        return None
    return await world.api.get(httpx.URL(r.headers["location"]).path)


async def pass_recovery(world: World, pi: dict) -> None:
    await make_due(world.kassa, pi["id"])
    await recovery.recover_open_attempts(world.kassa)


async def assert_books(world: World) -> None:
    report = await verify(world.kassa.pool)
    assert report.ok, report


def with_watch(world: World, **changes: Any) -> Any:
    """Shrink recovery's deadlines for one test; returns the old policy to restore."""
    old = world.kassa.watch
    world.kassa.watch = dataclasses.replace(old, **changes)
    return old


# --------------------------------------------------------------- 1: cancel during 3DS


async def test_cancel_during_3ds_voids_at_the_psp_before_the_customer_completes(world):
    pi = await world.pay("pm_card_authenticationRequired", amount=5000)
    assert pi["status"] == "requires_action"
    r = await world.api.post(f"/v1/payment_intents/{pi['id']}/cancel", headers=world.auth)
    assert r.status_code == 200 and r.json()["status"] == "canceled", r.text
    assert (await sim_auth(world, pi))["status"] == "voided"
    # the customer completes afterwards: nothing happens at the PSP any more
    await customer_completes(world, pi)
    auth = await sim_auth(world, pi)
    assert (auth["status"], auth["amount_captured"]) == ("voided", 0)
    got = await get_pi(world, pi)
    assert (got["status"], got["amount_received"]) == ("canceled", 0)
    assert await ledger_kinds(world, pi) == []
    await assert_books(world)


async def test_cancel_after_the_customer_completed_records_the_capture(world):
    pi = await world.pay("pm_card_authenticationRequired", amount=5000)
    await customer_completes(world, pi, come_back=False)  # and the webhook is held
    r = await world.api.post(f"/v1/payment_intents/{pi['id']}/cancel", headers=world.auth)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "payment_intent_unexpected_state"
    auth = await sim_auth(world, pi)
    assert (auth["status"], auth["amount_captured"]) == ("captured", 5000)
    got = await get_pi(world, pi)
    assert (got["status"], got["amount_received"]) == ("succeeded", 5000)
    assert await ledger_kinds(world, pi) == ["capture"]
    await assert_books(world)


async def test_cancel_after_a_manual_capture_authentication_voids_the_hold(world):
    """Authorised (not captured) at the PSP before the cancel arrived: the void releases it
    there, so nothing was ever held in kassa's books either."""
    pi = await world.pay("pm_card_authenticationRequired", amount=4000, capture_method="manual")
    await customer_completes(world, pi, come_back=False)
    r = await world.api.post(f"/v1/payment_intents/{pi['id']}/cancel", headers=world.auth)
    assert r.status_code == 200 and r.json()["status"] == "canceled", r.text
    auth = await sim_auth(world, pi)
    assert (auth["status"], auth["amount_captured"]) == ("voided", 0)
    assert await ledger_kinds(world, pi) == []
    await world.flush()  # the PSP's authorization.updated arrives late: stale
    await world.apply()
    assert (await get_pi(world, pi))["status"] == "canceled"
    assert await ledger_kinds(world, pi) == []
    await assert_books(world)


# --------------------------------------------------------------- 2: 3DS completes by itself


async def test_3ds_outcome_arrives_by_psp_webhook(world):
    pi = await world.pay("pm_card_authenticationRequired", amount=3000)
    await customer_completes(world, pi, come_back=False)
    assert (await get_pi(world, pi))["status"] == "requires_action"
    await world.flush()
    await world.apply()
    got = await get_pi(world, pi)
    assert (got["status"], got["amount_received"]) == ("succeeded", 3000)
    assert await ledger_kinds(world, pi) == ["capture"]
    # the customer's late return changes nothing
    again = await world.api.get(f"/psp/simulator/return/{pi['latest_charge']}")
    assert again.status_code == 200
    assert await ledger_kinds(world, pi) == ["capture"]
    await assert_books(world)


async def test_3ds_outcome_is_polled_when_webhook_and_redirect_are_lost(world):
    pi = await world.pay("pm_card_authenticationRequired", amount=3000, capture_method="manual")
    await customer_completes(world, pi, come_back=False)
    await pass_recovery(world, pi)
    got = await get_pi(world, pi)
    assert (got["status"], got["amount_capturable"]) == ("requires_capture", 3000)
    assert await ledger_kinds(world, pi) == ["authorization_hold"]
    await assert_books(world)


async def test_3ds_left_open_expires_voided_at_the_psp(world):
    pi = await world.pay("pm_card_authenticationRequired", amount=3000)
    old = with_watch(world, action_expiry_seconds=0.0)
    try:
        await pass_recovery(world, pi)
    finally:
        world.kassa.watch = old
    got = await get_pi(world, pi)
    assert got["status"] == "requires_payment_method", got
    assert got["last_payment_error"]["code"] == "payment_intent_authentication_failure"
    assert got["next_action"] is None
    assert (await sim_auth(world, pi))["status"] == "voided"
    await customer_completes(world, pi)  # too late: nothing is charged
    assert (await sim_auth(world, pi))["amount_captured"] == 0
    assert await ledger_kinds(world, pi) == []
    assert "payment_intent.payment_failed" in await world.events(pi["id"])


# --------------------------------------------------------------- 3: pending refunds


async def test_pending_refund_is_polled_when_its_webhook_is_lost(world):
    pi = await world.pay(amount=6000)
    await world.configure(refund_mode="pending")
    r = await world.api.post("/v1/refunds", headers=world.auth,
                             data={"payment_intent": pi["id"], "amount": "2500"})
    refund = r.json()
    assert refund["status"] == "pending", r.text
    key = await world.kassa.pool.fetchval("SELECT attempt_id FROM refunds WHERE id = $1",
                                          refund["id"])
    await pass_recovery(world, pi)  # still pending at the PSP: nothing recorded
    assert (await world.api.get(f"/v1/refunds/{refund['id']}", headers=world.auth)
            ).json()["status"] == "pending"
    await world.sim.post(f"/_sim/operations/{key}/settle", json={"outcome": "succeeded"})
    await pass_recovery(world, pi)  # the webhook never arrives (held)
    got = (await world.api.get(f"/v1/refunds/{refund['id']}", headers=world.auth)).json()
    assert got["status"] == "succeeded"
    assert (await sim_auth(world, pi))["amount_refunded"] == 2500
    assert await world.kassa.pool.fetchval(
        "SELECT amount_refunded FROM payment_intents WHERE id = $1", pi["id"]) == 2500
    await world.flush()
    await world.apply()  # the late webhook: a no-op
    n = await world.kassa.pool.fetchval(
        "SELECT count(*) FROM ledger_transactions WHERE source_id = $1", refund["id"])
    assert n == 1
    await assert_books(world)


# --------------------------------------------------------------- 4: holds expire


async def test_uncaptured_hold_expires_voided_and_released(world):
    pi = await world.pay(amount=7000, capture_method="manual")
    old = with_watch(world, default_hold_validity_seconds=0.0, hold_validity_seconds={})
    try:
        await pass_recovery(world, pi)
    finally:
        world.kassa.watch = old
    got = await get_pi(world, pi)
    assert (got["status"], got["cancellation_reason"]) == ("canceled", "automatic"), got
    assert (await sim_auth(world, pi))["status"] == "voided"
    assert await ledger_kinds(world, pi) == ["authorization_hold", "authorization_release"]
    assert (await world.events(pi["id"]))[-1] == "payment_intent.canceled"
    await assert_books(world)


async def test_capture_after_the_psp_expired_the_authorisation_releases_the_hold(world):
    pi = await world.pay(amount=7000, capture_method="manual")
    await world.configure(authorization_validity_s=0)
    try:
        r = await world.api.post(f"/v1/payment_intents/{pi['id']}/capture", headers=world.auth)
    finally:
        await world.configure(authorization_validity_s=7 * 24 * 3600)
    assert r.status_code == 400 and r.json()["error"]["code"] == "charge_expired_for_capture"
    got = await get_pi(world, pi)
    assert (got["status"], got["cancellation_reason"]) == ("canceled", "automatic")
    assert (await sim_auth(world, pi))["amount_captured"] == 0
    assert await ledger_kinds(world, pi) == ["authorization_hold", "authorization_release"]
    await assert_books(world)


# --------------------------------------------------------------- 5: refusals, bad answers


async def test_psp_refusal_of_an_authorisation_is_a_recorded_decline(world):
    await world.sim.post("/_sim/faults", json={"faults": ["refuse"]})
    r = await world.api.post("/v1/payment_intents", headers=world.auth, data={
        "amount": "1500", "currency": "usd", "payment_method": "pm_card_visa",
        "confirm": "true"}, )
    assert r.status_code == 402, r.text
    err = r.json()["error"]
    assert (err["type"], err["code"]) == ("card_error", "processing_error")
    pi = err["payment_intent"]
    assert pi["status"] == "requires_payment_method"
    # nothing stuck: the merchant can try again with another card
    r = await world.api.post(f"/v1/payment_intents/{pi['id']}/confirm", headers=world.auth,
                             data={"payment_method": "pm_card_visa"})
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    await assert_books(world)


async def test_psp_that_forgot_the_authorisation_fails_the_capture_cleanly(world):
    pi = await world.pay(amount=2000, capture_method="manual")
    await world.sim.post("/_sim/faults", json={"faults": ["refuse"]})
    r = await world.api.post(f"/v1/payment_intents/{pi['id']}/capture", headers=world.auth)
    assert r.status_code == 400 and r.json()["error"]["code"] == "capture_failed", r.text
    assert (await get_pi(world, pi))["status"] == "requires_capture"  # movable again
    r = await world.api.post(f"/v1/payment_intents/{pi['id']}/capture", headers=world.auth)
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    await assert_books(world)


async def test_unreadable_answer_is_outcome_unknown_for_recovery(world):
    await world.sim.post("/_sim/faults", json={"faults": ["garbage_after_charge"]})
    pi = await world.pay(amount=2200)
    assert pi["status"] == "processing"  # not guessed
    await pass_recovery(world, pi)
    got = await get_pi(world, pi)
    assert (got["status"], got["amount_received"]) == ("succeeded", 2200)
    assert (await sim_auth(world, pi))["amount_captured"] == 2200
    await assert_books(world)


async def test_recovery_gives_up_into_needs_attention_then_still_settles(world):
    await world.configure(timeout_hang_s=1.0)
    old = with_watch(world, max_tries=2)
    impatient = world.kassa
    try:
        await world.sim.post("/_sim/faults", json={"faults": ["error"]})
        pi = await world.pay(amount=1800)
        assert pi["status"] == "processing"
        for _ in range(2):  # the PSP keeps failing every look
            await world.sim.post("/_sim/faults", json={"faults": ["error"]})
            await pass_recovery(world, pi)
        stuck = await stuck_of(impatient.pool, pi)
        assert [a.id for a in stuck] == [pi["latest_charge"]]
        assert stuck[0].error and stuck[0].error["code"] == "recovery_exhausted"
        assert (await get_pi(world, pi))["status"] == "processing"
        await pass_recovery(world, pi)  # the PSP is back
    finally:
        world.kassa.watch = old
    got = await get_pi(world, pi)
    assert got["status"] == "succeeded"
    assert await stuck_of(impatient.pool, pi) == []
    await assert_books(world)


# --------------------------------------------------------------- 6: lease, repeat exactly


async def test_a_claimed_attempt_is_leased_to_one_worker(world):
    await world.sim.post("/_sim/faults", json={"faults": ["error"]})
    pi = await world.pay(amount=1100)
    await make_due(world.kassa, pi["id"])
    async with world.kassa.pool.acquire() as a, world.kassa.pool.acquire() as b:
        first = await payments_db.claim_due_attempts(a, lease_s=60, limit=10)
        second = await payments_db.claim_due_attempts(b, lease_s=60, limit=10)
    assert pi["latest_charge"] in [x.id for x in first]
    assert pi["latest_charge"] not in [x.id for x in second]
    await pass_recovery(world, pi)
    assert (await get_pi(world, pi))["status"] == "succeeded"


async def test_repeated_authorisation_keeps_the_return_url(world):
    await world.configure(timeout_hang_s=0.0)
    await world.sim.post("/_sim/faults", json={"faults": ["error"]})
    pi = await world.pay("pm_card_authenticationRequired", amount=1200,
                         return_url="https://shop.example/back")
    assert pi["status"] == "processing"
    await pass_recovery(world, pi)  # repeated with the same key and parameters
    got = await get_pi(world, pi)
    assert got["status"] == "requires_action", got
    assert got["next_action"]["redirect_to_url"]["return_url"] == "https://shop.example/back"
    stats = (await world.sim.get("/_sim/stats")).json()
    assert stats["idempotency_conflicts"] == 0
    back = await customer_completes(world, got)
    assert back is not None and back.status_code == 303
    assert back.headers["location"].startswith("https://shop.example/back?payment_intent=")


async def test_a_cancel_whose_void_answer_was_lost_stays_canceled(world):
    """The void reached the PSP but its answer did not: polling the authentication then
    sees it `voided` at the PSP. That is the void's outcome, not a decline that would make
    the canceled payment confirmable again."""
    pi = await world.pay("pm_card_authenticationRequired", amount=2600)
    await world.configure(timeout_hang_s=0.0)
    await world.sim.post("/_sim/faults", json={"faults": ["error_after_charge"]})
    r = await world.api.post(f"/v1/payment_intents/{pi['id']}/cancel", headers=world.auth)
    assert r.status_code == 200 and r.json()["status"] == "processing", r.text
    assert (await sim_auth(world, pi))["status"] == "voided"
    back = await world.api.get(f"/psp/simulator/return/{pi['latest_charge']}")
    assert back.status_code == 200  # the customer's late return records no decline
    assert (await get_pi(world, pi))["status"] == "processing"
    await pass_recovery(world, pi)  # both attempts are looked at, in any order
    await pass_recovery(world, pi)
    got = await get_pi(world, pi)
    assert (got["status"], got["last_payment_error"]) == ("canceled", None), got
    assert "payment_intent.payment_failed" not in await world.events(pi["id"])
    assert await stuck_of(world.kassa.pool, pi) == []
    assert await ledger_kinds(world, pi) == []
    await assert_books(world)


async def test_recovery_does_not_overwrite_a_deadline_set_meanwhile(world):
    pi = await world.pay(amount=1300, capture_method="manual")
    await make_due(world.kassa, pi["id"])
    async with world.kassa.pool.acquire() as conn:
        [seen] = await payments_db.claim_due_attempts(conn, lease_s=60, limit=10)
        # meanwhile the attempt moved on (recorded by someone else, tries reset)
        await conn.execute("UPDATE attempts SET tries = tries + 1 WHERE id = $1", seen.id)
        assert await payments_db.reschedule_attempt(conn, seen, delay_s=1.0, count_try=True) is None
        due = await conn.fetchval("SELECT next_check_at > now() + interval '30 seconds'"
                                  " FROM attempts WHERE id = $1", seen.id)
    assert due  # the lease set by the claim stands, not the stale look's 1 s


async def stuck_of(pool, pi: dict) -> list:
    """This payment's attempts waiting for an operator (the database is shared: other
    tests leave theirs, some on purpose)."""
    return [a for a in await payments_db.list_stuck_attempts(pool, limit=10_000)
            if a.payment_intent_id == pi["id"]]
