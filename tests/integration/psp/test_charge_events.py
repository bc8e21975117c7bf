"""charge.* events where Stripe sends them, each carrying the whole charge as committed with
the change it describes: a hold released by a cancel (refunded) or by its expiry (expired),
3-D Secure (pending, then succeeded or failed), refunds (charge.refund.updated beside
refund.updated). Amounts are checked against the simulator's books."""

from __future__ import annotations

from typing import Any

from tests.integration.psp.conftest import World
from tests.integration.psp.test_money_holes import (
    assert_books,
    customer_completes,
    pass_recovery,
    sim_auth,
    with_watch,
)
from tests.support.stripe_schema import assert_stripe_shape


async def charge_events(world: World, charge_id: str) -> list[tuple[str, dict[str, Any]]]:
    rows = await world.kassa.pool.fetch(
        "SELECT type, data FROM events WHERE object_id = $1 ORDER BY seq", charge_id)
    for r in rows:
        assert_stripe_shape(r["data"], "Event")
    return [(r["type"], r["data"]["data"]["object"]) for r in rows]


async def get_charge(world: World, charge_id: str) -> dict[str, Any]:
    r = await world.api.get(f"/v1/charges/{charge_id}", headers=world.auth)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_cancel_refunds_the_uncaptured_charge(world: World):
    pi = await world.pay(amount=4200, capture_method="manual")
    r = await world.api.post(f"/v1/payment_intents/{pi['id']}/cancel", headers=world.auth)
    assert r.status_code == 200 and r.json()["status"] == "canceled", r.text
    charge = await get_charge(world, pi["latest_charge"])
    assert (charge["status"], charge["paid"], charge["captured"], charge["amount_captured"],
            charge["amount_refunded"], charge["refunded"]) == ("succeeded", True, False, 0,
                                                               4200, True)
    assert (await sim_auth(world, pi))["status"] == "voided"
    events = await charge_events(world, pi["latest_charge"])
    assert [t for t, _ in events] == ["charge.succeeded", "charge.refunded"]
    assert events[0][1]["captured"] is False and events[0][1]["amount_refunded"] == 0
    assert events[1][1] == {**charge, "refunds": events[1][1]["refunds"]}
    await assert_books(world)


async def test_an_expired_hold_expires_its_charge(world: World):
    pi = await world.pay(amount=7100, capture_method="manual")
    old = with_watch(world, default_hold_validity_seconds=0.0, hold_validity_seconds={})
    try:
        await pass_recovery(world, pi)
    finally:
        world.kassa.watch = old
    events = await charge_events(world, pi["latest_charge"])
    assert [t for t, _ in events] == ["charge.succeeded", "charge.expired"]
    assert (events[1][1]["refunded"], events[1][1]["amount_refunded"]) == (True, 7100)
    assert (await sim_auth(world, pi))["status"] == "voided"


async def test_3ds_charge_is_pending_until_the_customer_is_back(world: World):
    pi = await world.pay("pm_card_authenticationRequired", amount=3300)
    assert pi["status"] == "requires_action"
    charge = await get_charge(world, pi["latest_charge"])
    assert (charge["status"], charge["paid"], charge["outcome"]) == ("pending", False, None)
    assert await charge_events(world, pi["latest_charge"]) == []
    await customer_completes(world, pi)
    events = await charge_events(world, pi["latest_charge"])
    assert [t for t, _ in events] == ["charge.succeeded"]
    charge = events[0][1]
    assert (charge["status"], charge["amount_captured"], charge["captured"]) == (
        "succeeded", 3300, True)
    stored = await get_charge(world, pi["latest_charge"])
    assert charge["balance_transaction"] is not None
    assert charge["balance_transaction"] == stored["balance_transaction"]
    assert (await sim_auth(world, pi))["amount_captured"] == 3300
    await assert_books(world)


async def test_failed_3ds_is_a_failed_charge(world: World):
    pi = await world.pay("pm_card_authenticationRequired", amount=3400)
    await customer_completes(world, pi, "fail")
    events = await charge_events(world, pi["latest_charge"])
    assert [t for t, _ in events] == ["charge.failed"]
    charge = await get_charge(world, pi["latest_charge"])
    assert (charge["status"], charge["paid"], charge["amount_captured"]) == ("failed", False, 0)
    assert charge["failure_code"] is not None and charge["outcome"]["type"] != "authorized"


async def test_refund_events_carry_the_charge_and_the_refund(world: World):
    pi = await world.pay(amount=5000)
    r = await world.api.post("/v1/refunds", headers=world.auth,
                             data={"charge": pi["latest_charge"], "amount": "1200"})
    refund = r.json()
    assert refund["status"] == "succeeded", r.text
    events = await charge_events(world, pi["latest_charge"])
    assert [t for t, _ in events] == ["charge.succeeded", "charge.refunded"]
    refunded = events[1][1]
    assert (refunded["amount_refunded"], refunded["refunds"]["data"][0]["id"],
            refunded["refunds"]["data"][0]["status"]) == (1200, refund["id"], "succeeded")
    assert await world.events(refund["id"]) == ["refund.created", "refund.updated",
                                                 "charge.refund.updated"]
    assert (await sim_auth(world, pi))["amount_refunded"] == 1200
    await assert_books(world)


async def test_a_disputed_charge_and_its_expansions(world: World):
    from tests.integration.psp.test_disputes_api import disputed

    pi, dispute = await disputed(world, amount=2600)
    charge = await get_charge(world, pi["latest_charge"])
    assert (charge["disputed"], charge["amount_captured"]) == (True, 2600)
    r = await world.api.get(f"/v1/disputes/{dispute['id']}", headers=world.auth,
                            params={"expand[]": ["charge", "payment_intent"]})
    assert r.json()["charge"]["id"] == pi["latest_charge"] and r.json()["charge"]["disputed"]
    assert r.json()["payment_intent"]["id"] == pi["id"]
    (bt,) = dispute["balance_transactions"]
    r = await world.api.get("/v1/balance_transactions", headers=world.auth,
                            params={"source": dispute["id"], "expand[]": "data.source"})
    assert [b["source"]["id"] for b in r.json()["data"]] == [dispute["id"]]
    assert r.json()["data"][0]["id"] == bt["id"]
