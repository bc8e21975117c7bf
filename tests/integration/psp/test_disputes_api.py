"""/v1/disputes over HTTP: disputes arrive by PSP webhook; merchants read them, answer with
evidence or concede; the simulator hears about it and its decision comes back by webhook.
Ledger, balance transactions, balances and events at every step; tenancy."""

from __future__ import annotations

from kassa.ledger.verify import verify
from kassa.services import merchants
from tests.integration.psp.conftest import World
from tests.support.stripe_schema import assert_stripe_shape

FEE = 1500


async def disputed(world: World, amount: int = 10_000) -> tuple[dict, dict]:
    pi = await world.pay("pm_card_createDispute", amount=amount)
    await world.flush()
    await world.apply()
    r = await world.api.get("/v1/disputes", headers=world.auth,
                            params={"payment_intent": pi["id"]})
    (dispute,) = r.json()["data"]
    return pi, dispute


async def balance(world: World) -> tuple[int, int]:
    bal = (await world.api.get("/v1/balance", headers=world.auth)).json()
    return bal["available"][0]["amount"], bal["pending"][0]["amount"]


async def sim_dispute(world: World, pi: dict) -> dict:
    auth_id = await world.authorization(pi)
    return next(d for d in (await world.sim.get("/_sim/disputes")).json()
                if d["authorization"] == auth_id)


async def assert_ledger_ok(world: World) -> None:
    report = await verify(world.kassa.pool)
    assert report.ok, report.problems


async def test_dispute_object_balance_transactions_and_balance(world: World):
    pi, d = await disputed(world, amount=10_000)
    assert d["id"].startswith("dp_") and d["object"] == "dispute"
    assert (d["amount"], d["currency"], d["status"], d["reason"]) == (
        10_000, "usd", "needs_response", "fraudulent")
    assert d["payment_intent"] == pi["id"] and d["charge"] == pi["latest_charge"]
    assert d["is_charge_refundable"] is False and d["livemode"] is False
    assert d["evidence"]["uncategorized_text"] is None and "receipt" in d["evidence"]
    details = d["evidence_details"]
    assert details["due_by"] > d["created"] and details["has_evidence"] is False
    assert (details["past_due"], details["submission_count"]) == (False, 0)
    (bt,) = d["balance_transactions"]
    assert (bt["type"], bt["amount"], bt["fee"], bt["net"], bt["source"]) == (
        "adjustment", -10_000, FEE, -(10_000 + FEE), d["id"])
    assert bt["id"] in {b["id"] for b in (await world.api.get(
        "/v1/balance_transactions", headers=world.auth)).json()["data"]}
    available, pending = await balance(world)
    assert available == -(10_000 + FEE)  # the charge itself is still pending settlement
    assert pending == 10_000 - 320  # 2.9 % + 30
    same = (await world.api.get(f"/v1/disputes/{d['id']}", headers=world.auth)).json()
    assert same == d
    assert_stripe_shape(d, "Dispute")
    await assert_ledger_ok(world)


async def test_another_merchant_cannot_see_or_touch_the_dispute(world: World):
    _, d = await disputed(world)
    other = await merchants.create_merchant(world.kassa, name="Other")
    auth = {"Authorization": f"Bearer {other['secret_key']}"}
    assert (await world.api.get(f"/v1/disputes/{d['id']}", headers=auth)).status_code == 404
    r = await world.api.post(f"/v1/disputes/{d['id']}", headers=auth,
                             data={"evidence[uncategorized_text]": "x"})
    assert r.status_code == 404
    r = await world.api.post(f"/v1/disputes/{d['id']}/close", headers=auth)
    assert r.status_code == 404
    assert (await world.api.get("/v1/disputes", headers=auth)).json()["data"] == []
    assert (await world.api.get("/v1/disputes")).status_code == 401


async def test_list_is_newest_first_and_paginates(world: World):
    ids = [(await disputed(world, amount=1000 + i))[1]["id"] for i in range(3)]
    r = await world.api.get("/v1/disputes", headers=world.auth, params={"limit": 2})
    page = r.json()
    assert [d["id"] for d in page["data"]] == ids[::-1][:2] and page["has_more"] is True
    r = await world.api.get("/v1/disputes", headers=world.auth,
                            params={"limit": 2, "starting_after": page["data"][-1]["id"]})
    assert [d["id"] for d in r.json()["data"]] == [ids[0]]
    r = await world.api.get("/v1/disputes", headers=world.auth,
                            params={"charge": "ch_nope"})
    assert r.json()["data"] == []


async def test_evidence_draft_then_submission_moves_to_review(world: World):
    pi, d = await disputed(world)
    r = await world.api.post(f"/v1/disputes/{d['id']}", headers=world.auth, data={
        "evidence[customer_name]": "Ada Lovelace",
        "evidence[product_description]": "A difference engine", "metadata[case]": "42"})
    assert r.status_code == 200, r.text
    draft = r.json()
    assert draft["status"] == "needs_response"
    assert draft["evidence"]["customer_name"] == "Ada Lovelace"
    assert draft["evidence_details"]["has_evidence"] is True
    assert draft["metadata"] == {"case": "42"}
    assert (await sim_dispute(world, pi))["status"] == "needs_response"  # not sent yet
    r = await world.api.post(f"/v1/disputes/{d['id']}", headers=world.auth, data={
        "evidence[uncategorized_text]": "Signed delivery receipt attached.",
        "submit": "true"})
    assert r.status_code == 200, r.text
    submitted = r.json()
    assert submitted["status"] == "under_review"
    assert submitted["evidence_details"]["submission_count"] == 1
    assert submitted["evidence"]["customer_name"] == "Ada Lovelace"  # merged
    sim = await sim_dispute(world, pi)
    assert sim["status"] == "under_review"
    assert sim["evidence"]["uncategorized_text"] == "Signed delivery receipt attached."
    # evidence is final once submitted
    r = await world.api.post(f"/v1/disputes/{d['id']}", headers=world.auth,
                             data={"evidence[customer_name]": "Someone else"})
    assert r.status_code == 400
    # the PSP's own under_review event changes nothing more
    await world.flush()
    await world.apply()
    assert [e["status"] for e in await world.inbox()][-1] == "ignored"
    assert await world.events(d["id"]) == [
        "charge.dispute.created", "charge.dispute.funds_withdrawn", "charge.dispute.updated",
        "charge.dispute.updated"]
    await assert_ledger_ok(world)


async def test_winning_evidence_returns_the_amount_and_the_fee(world: World):
    """Stripe's test-mode rule: submitted `winning_evidence` wins the dispute."""
    pi, d = await disputed(world, amount=5000)
    available_before, _ = await balance(world)
    assert available_before == -(5000 + FEE)
    r = await world.api.post(f"/v1/disputes/{d['id']}", headers=world.auth, json={
        "evidence": {"uncategorized_text": "winning_evidence"}, "submit": True})
    assert r.status_code == 200 and r.json()["status"] == "under_review", r.text
    await world.flush()
    await world.apply()
    won = (await world.api.get(f"/v1/disputes/{d['id']}", headers=world.auth)).json()
    assert won["status"] == "won"
    assert [(b["amount"], b["fee"], b["net"]) for b in won["balance_transactions"]] == [
        (-5000, FEE, -(5000 + FEE)), (5000, -FEE, 5000 + FEE)]
    assert (await balance(world))[0] == 0
    assert (await world.events(d["id"]))[-2:] == ["charge.dispute.closed",
                                                  "charge.dispute.funds_reinstated"]
    # a decided dispute can no longer be answered or conceded
    r = await world.api.post(f"/v1/disputes/{d['id']}/close", headers=world.auth)
    assert r.status_code == 400
    await assert_ledger_ok(world)


async def test_losing_decision_keeps_the_funds_withdrawn(world: World):
    pi, d = await disputed(world, amount=5000)
    r = await world.api.post(f"/v1/disputes/{d['id']}", headers=world.auth, data={
        "evidence[uncategorized_text]": "losing_evidence", "submit": "true"})
    assert r.status_code == 200
    await world.flush()
    await world.apply()
    lost = (await world.api.get(f"/v1/disputes/{d['id']}", headers=world.auth)).json()
    assert lost["status"] == "lost" and len(lost["balance_transactions"]) == 1
    assert (await balance(world))[0] == -(5000 + FEE)
    await assert_ledger_ok(world)


async def test_close_concedes_the_dispute(world: World):
    pi, d = await disputed(world, amount=3000)
    r = await world.api.post(f"/v1/disputes/{d['id']}/close",
                             headers={**world.auth, "Idempotency-Key": "c1"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "lost"
    again = await world.api.post(f"/v1/disputes/{d['id']}/close",
                                 headers={**world.auth, "Idempotency-Key": "c1"})
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json() == r.json()
    assert (await sim_dispute(world, pi))["status"] == "lost"
    await world.flush()  # the PSP's dispute.closed: already recorded
    await world.apply()
    assert [e["status"] for e in await world.inbox()][-1] == "ignored"
    assert await world.events(d["id"]) == [
        "charge.dispute.created", "charge.dispute.funds_withdrawn", "charge.dispute.closed"]
    r = await world.api.post(f"/v1/disputes/{d['id']}/close", headers=world.auth)
    assert r.status_code == 400
    # a charged-back payment cannot be refunded as well: kassa refuses it, as Stripe does,
    # without asking the PSP
    before = (await world.sim.get("/_sim/stats")).json()["failed_operations"]
    r = await world.api.post("/v1/refunds", headers=world.auth,
                             data={"payment_intent": pi["id"]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "charge_disputed", r.text
    assert (await world.sim.get("/_sim/stats")).json()["failed_operations"] == before
    assert await world.kassa.pool.fetchval(
        "SELECT amount_refunded FROM payment_intents WHERE id = $1", pi["id"]) == 0
    await assert_ledger_ok(world)


async def test_invalid_evidence_is_refused_before_the_psp_hears_of_it(world: World):
    pi, d = await disputed(world)
    for data, code in (({"evidence[favourite_colour]": "blue"}, "parameter_unknown"),
                       ({"evidence[receipt]": "file_123"}, "parameter_invalid"),
                       ({"evidence[uncategorized_text]": "x" * 150_001}, "parameter_invalid"),
                       ({"submit": "maybe"}, "parameter_invalid"),
                       ({"amount": "1"}, "parameter_unknown")):
        r = await world.api.post(f"/v1/disputes/{d['id']}", headers=world.auth, data=data)
        assert r.status_code == 400, (data, r.text)
        assert r.json()["error"]["code"] == code, (data, r.json())
    assert (await sim_dispute(world, pi))["status"] == "needs_response"
    r = await world.api.post("/v1/disputes/dp_unknown", headers=world.auth, data={})
    assert r.status_code == 404


async def test_inquiry_moves_no_money_until_it_escalates(world: World):
    pi = await world.pay(amount=4000)
    auth_id = await world.authorization(pi)
    r = await world.sim.post(f"/_sim/disputes/{auth_id}/open", json={"inquiry": True})
    assert r.status_code == 200, r.text
    await world.flush()
    await world.apply()
    (d,) = (await world.api.get("/v1/disputes", headers=world.auth)).json()["data"]
    assert d["status"] == "warning_needs_response" and d["balance_transactions"] == []
    assert d["is_charge_refundable"] is True
    assert (await balance(world))[0] == 0
    await world.sim.post(f"/_sim/disputes/{auth_id}/escalate")
    await world.flush()
    await world.apply()
    d = (await world.api.get(f"/v1/disputes/{d['id']}", headers=world.auth)).json()
    assert d["status"] == "needs_response" and len(d["balance_transactions"]) == 1
    assert d["is_charge_refundable"] is False
    assert (await balance(world))[0] == -(4000 + FEE)
    assert await world.events(d["id"]) == [
        "charge.dispute.created", "charge.dispute.funds_withdrawn", "charge.dispute.updated"]
    await assert_ledger_ok(world)


async def test_inquiry_closed_in_the_merchants_favour(world: World):
    pi = await world.pay(amount=4000)
    auth_id = await world.authorization(pi)
    await world.sim.post(f"/_sim/disputes/{auth_id}/open", json={"inquiry": True})
    await world.sim.post(f"/_sim/disputes/{auth_id}/close", json={"outcome": "warning_closed"})
    await world.flush()
    await world.apply()
    (d,) = (await world.api.get("/v1/disputes", headers=world.auth)).json()["data"]
    assert d["status"] == "warning_closed" and d["balance_transactions"] == []
    assert await world.events(d["id"]) == ["charge.dispute.created",
                                           "charge.dispute.closed"]
    await assert_ledger_ok(world)
