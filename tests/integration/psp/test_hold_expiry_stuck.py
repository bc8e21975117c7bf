"""A hold whose validity ends while its capture is unresolved (the payment ``processing``):
recovery's hold expiry asks the PSP (the capture's own lookup or repeat, then the
authorisation itself) and records what the PSP shows, once: captured → the capture;
lapsed uncaptured → the hold released and the payment ``canceled`` (``automatic``); still
authorised → looked at again, nothing guessed. Money is counted at both ends: the
simulator's own record of the authorisation against kassa's ledger."""

from __future__ import annotations

from typing import Any

from kassa.db import payments as payments_db
from kassa.services import recovery
from tests.integration.psp.conftest import World
from tests.integration.psp.test_money_holes import (
    assert_books,
    get_pi,
    ledger_kinds,
    sim_auth,
    with_watch,
)


async def stuck_capture(world: World, amount: int) -> tuple[dict[str, Any], str]:
    """A manual-capture payment whose capture the PSP never received (503: nothing done),
    so it is ``processing`` with the capture's outcome open. Returns (payment, capture)."""
    pi = await world.pay(amount=amount, capture_method="manual")
    await world.sim.post("/_sim/faults", json={"faults": ["error"]})
    r = await world.api.post(f"/v1/payment_intents/{pi['id']}/capture", headers=world.auth)
    assert (await get_pi(world, pi))["status"] == "processing", r.text
    capture = await world.kassa.pool.fetchval(
        "SELECT id FROM attempts WHERE payment_intent_id = $1 AND operation = 'capture'",
        pi["id"])
    return pi, capture


async def look_at_the_hold(world: World, pi: dict[str, Any]) -> str:
    """Recovery's look at the authorisation once its validity is over (only the hold's
    watch, not the capture's own: what expiry does by itself)."""
    charge = await payments_db.get_attempt(world.kassa.pool, pi["latest_charge"])
    assert charge is not None
    old = with_watch(world, default_hold_validity_seconds=0.0, hold_validity_seconds={})
    try:
        return await recovery.look(world.kassa, charge)
    finally:
        world.kassa.watch = old


async def test_a_capture_unresolved_past_the_validity_of_a_lapsed_hold_releases_it(world):
    pi, capture = await stuck_capture(world, 6100)
    # the PSP lets the authorisation lapse uncaptured, and is still refusing captures
    r = await world.sim.post(f"/_sim/authorizations/{await world.authorization(pi)}/expire")
    assert r.status_code == 200 and r.json()["status"] == "expired", r.text
    await world.sim.post("/_sim/faults", json={"faults": ["error"]})

    await look_at_the_hold(world, pi)
    got = await get_pi(world, pi)
    assert (got["status"], got["cancellation_reason"], got["amount_received"]) == (
        "canceled", "automatic", 0), got
    attempt = await payments_db.get_attempt(world.kassa.pool, capture)
    assert attempt is not None and attempt.status.value == "failed"
    assert attempt.error and attempt.error["code"] == "charge_expired_for_capture"
    # nothing captured at the PSP; the hold released once on kassa's books
    at_psp = await sim_auth(world, pi)
    assert (at_psp["status"], at_psp["amount_captured"]) == ("expired", 0)
    assert await ledger_kinds(world, pi) == ["authorization_hold", "authorization_release"]
    events = await world.events(pi["id"])
    assert events[-1] == "payment_intent.canceled"
    assert "charge.expired" in await world.events(pi["latest_charge"])

    # another look (a second worker, a repeated pass) releases nothing twice
    await look_at_the_hold(world, pi)
    assert await ledger_kinds(world, pi) == ["authorization_hold", "authorization_release"]
    assert await world.events(pi["id"]) == events
    await assert_books(world)


async def test_a_pending_capture_the_psp_settled_is_recorded_at_the_hold_expiry(world):
    await world.configure(capture_mode="pending")
    try:
        pi = await world.pay(amount=4300, capture_method="manual")
        r = await world.api.post(f"/v1/payment_intents/{pi['id']}/capture",
                                 headers=world.auth)
        assert r.status_code == 200 and r.json()["status"] == "processing", r.text
    finally:
        await world.configure(capture_mode="immediate")
    capture = await world.kassa.pool.fetchval(
        "SELECT id FROM attempts WHERE payment_intent_id = $1 AND operation = 'capture'",
        pi["id"])
    # the PSP captured it; its webhook is held (lost, as far as kassa knows)
    r = await world.sim.post(f"/_sim/operations/{capture}/settle",
                             json={"outcome": "succeeded"})
    assert r.status_code == 200, r.text

    await look_at_the_hold(world, pi)
    got = await get_pi(world, pi)
    assert (got["status"], got["amount_received"]) == ("succeeded", 4300), got
    assert (await sim_auth(world, pi))["amount_captured"] == 4300
    kinds = await world.kassa.pool.fetch(
        "SELECT kind FROM ledger_transactions WHERE source_id = ANY($1::text[])",
        [pi["id"], pi["latest_charge"], capture])
    assert sorted(k["kind"] for k in kinds) == ["authorization_hold", "capture"]
    await assert_books(world)


async def test_a_hold_the_psp_still_authorises_is_not_guessed_at(world):
    pi, capture = await stuck_capture(world, 2900)
    await world.sim.post("/_sim/faults", json={"faults": ["error"]})  # the repeat fails too

    assert await look_at_the_hold(world, pi) == "unresolved"
    got = await get_pi(world, pi)
    assert got["status"] == "processing"  # neither captured nor released by guess
    attempt = await payments_db.get_attempt(world.kassa.pool, capture)
    assert attempt is not None and attempt.status.value == "unknown"
    assert (await sim_auth(world, pi))["status"] == "authorized"
    assert await ledger_kinds(world, pi) == ["authorization_hold"]
    # the PSP takes captures again: the capture's own recovery settles it
    await world.kassa.pool.execute(
        "UPDATE attempts SET next_check_at = now() WHERE id = $1", capture)
    assert await recovery.look(world.kassa, attempt) == "recorded"
    assert (await get_pi(world, pi))["status"] == "succeeded"
    assert (await sim_auth(world, pi))["amount_captured"] == 2900
    await assert_books(world)


async def test_an_authorisation_the_psp_shows_captured_is_recorded_at_the_hold_expiry(world):
    """The capture kassa sent never reached the PSP (and its repeat is refused too), but the
    authorisation was captured there all the same (from the PSP's dashboard): what the
    PSP shows moved is what kassa's books record, under the stuck capture."""
    pi, capture = await stuck_capture(world, 3700)
    r = await world.sim.post(f"/v1/authorizations/{await world.authorization(pi)}/capture",
                             json={"idempotency_key": "dashboard-capture-1", "amount": 3700,
                                   "currency": "usd"})
    assert r.status_code == 200 and r.json()["status"] == "captured", r.text
    await world.sim.post("/_sim/faults", json={"faults": ["error"]})  # the repeat fails

    await look_at_the_hold(world, pi)
    got = await get_pi(world, pi)
    assert (got["status"], got["amount_received"]) == ("succeeded", 3700), got
    attempt = await payments_db.get_attempt(world.kassa.pool, capture)
    assert attempt is not None and attempt.status.value == "succeeded"
    assert (await sim_auth(world, pi))["amount_captured"] == 3700
    kinds = await world.kassa.pool.fetch(
        "SELECT kind FROM ledger_transactions WHERE source_id = ANY($1::text[])",
        [pi["id"], pi["latest_charge"], capture])
    assert sorted(k["kind"] for k in kinds) == ["authorization_hold", "capture"]
    await assert_books(world)
