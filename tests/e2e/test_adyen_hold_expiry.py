"""Adyen's dialect: a hold whose validity ends while its capture or cancel is only
``received`` (the notification never came). Adyen reads nothing back, so recovery's hold
expiry cannot learn whether anything was captured: it guesses nothing, flags the
operation for an operator (``needs_attention``, ``hold_expired_unresolved``) and keeps the
hold on the books; the flag stays through recovery's repeats (Adyen's ``received`` again
is no news), and Adyen's notification, when it comes, still settles it once. Money is
counted at both ends: the simulator's Adyen books against kassa's ledger."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from kassa.db import payments as payments_db
from kassa.services import recovery
from tests.e2e import test_adyen_payments as base
from tests.e2e.test_adyen_modifications import attempts, both_ends, ledger, settle
from tests.e2e.test_adyen_payments import World, with_psp_reference
from tests.support.recovery import make_due

adyen_sim_url, adyen_kassa, adyen_api, world = (
    base.adyen_sim_url, base.adyen_kassa, base.adyen_api, base.world)


def no_validity(world: World) -> Any:
    """Every hold is past its validity for one test; returns the old policy to restore."""
    old = world.kassa.watch
    world.kassa.watch = dataclasses.replace(old, default_hold_validity_seconds=0.0,
                                            hold_validity_seconds={})
    return old


async def look_at_the_hold(world: World, pi: dict[str, Any]) -> str:
    """Recovery's look at the authorisation once its validity (for this test: none) is
    over."""
    charge = await payments_db.get_attempt(world.kassa.pool, pi["latest_charge"])
    assert charge is not None
    old = no_validity(world)
    try:
        return await recovery.look(world.kassa, charge)
    finally:
        world.kassa.watch = old


@pytest.mark.parametrize(("operation", "path", "settled"), [
    ("capture", "capture", "succeeded"), ("void", "cancel", "canceled")])
async def test_an_unconfirmed_modification_past_the_hold_validity_is_flagged_not_guessed(
        world: World, operation: str, path: str, settled: str) -> None:
    pi = await with_psp_reference(world, await world.pay())
    assert (await world.post(f"/v1/payment_intents/{pi['id']}/{path}"))["status"] == \
        "processing"
    [stuck] = await attempts(world, pi, operation)
    assert stuck["status"] == "pending"
    # Adyen acted on it (captured, or cancelled); its notification is held: kassa
    # cannot know which
    assert await look_at_the_hold(world, pi) == "needs_attention"
    [flagged] = await attempts(world, pi, operation)
    assert flagged["status"] == "needs_attention"
    assert flagged["error"]["code"] == "hold_expired_unresolved"
    assert "hold validity" in flagged["error"]["message"]
    assert (await world.retrieve(pi))["status"] == "processing"
    assert await ledger(world, pi) == {"posted": 0, "pending": 2500}  # the hold stays on the books

    # recovery's own look at the flagged operation repeats it: `received` again, no news
    attempt = await payments_db.get_attempt(world.kassa.pool, stuck["id"])
    assert attempt is not None
    await recovery.look(world.kassa, attempt)
    [still] = await attempts(world, pi, operation)
    assert (still["status"], still["error"]["code"]) == (
        "needs_attention", "hold_expired_unresolved")
    stuck_ids = [a.id for a in await payments_db.list_stuck_attempts(world.kassa.pool)]
    assert stuck["id"] in stuck_ids

    # Adyen's notification settles it, once
    await world.deliver()
    done = await world.retrieve(pi)
    assert done["status"] == settled
    at_adyen = await both_ends(world, pi, held=0)
    assert at_adyen["amount_captured"] == (2500 if operation == "capture" else 0)
    assert await look_at_the_hold(world, pi) in ("released", "recorded_elsewhere")
    await both_ends(world, pi, held=0)



async def test_a_hold_posted_again_on_a_charge_not_succeeded_still_expires(
        world: World) -> None:
    """A capture the scheme rejects after it was booked posts the hold again
    (capture.reverse): the payment is requires_capture and must be voided at the hold's
    deadline whatever the status of its charge's attempt (here flagged for an operator,
    so not ``succeeded``) — never left held with no deadline."""
    pi = await with_psp_reference(world, await world.pay())
    await world.post(f"/v1/payment_intents/{pi['id']}/capture")
    await world.deliver()  # CAPTURE
    [first] = await attempts(world, pi, "capture")
    await world.kassa.pool.execute(
        "UPDATE attempts SET status = 'needs_attention', error = jsonb_build_object("
        "'code', 'unrecordable_outcome', 'message', 'an operator looks', 'was', status)"
        " WHERE id = $1", pi["latest_charge"])
    await settle(world, first["id"], "failed")  # CAPTURE_FAILED
    await world.deliver()
    again = await world.retrieve(pi)
    assert (again["status"], again["amount_capturable"]) == ("requires_capture", 2500)
    # the hold's deadline is set again: the authorisation's start plus its validity
    row = await world.kassa.pool.fetchrow(
        "SELECT extract(epoch FROM next_check_at - created_at)::int AS wait, status"
        " FROM attempts WHERE id = $1", pi["latest_charge"])
    validity = world.kassa.watch.hold_validity("adyen")
    assert row["status"] == "needs_attention"
    assert abs(row["wait"] - validity) <= 60, row
    await both_ends(world, pi, held=2500)

    old = no_validity(world)
    try:
        await make_due(world.kassa, pi["id"])
        await recovery.recover_open_attempts(world.kassa)  # voids it at Adyen: received
        await world.deliver()  # CANCELLATION
    finally:
        world.kassa.watch = old
    done = await world.retrieve(pi)
    assert (done["status"], done["cancellation_reason"]) == ("canceled", "automatic"), done
    at_adyen = await both_ends(world, pi, held=0)
    assert at_adyen["amount_captured"] == 0
