"""Charges through Stripe's own Python SDK against a live kassa: every authorisation attempt a
charge, retrieve, list by payment_intent and created, auto-paging, expand, refund by charge,
the receipt page — amounts checked against the simulator's books and kassa's ledger."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import httpx
import pytest
import stripe

from kassa.api.app import create_app
from tests.support.api_server import serving
from tests.support.stripe_schema import assert_stripe_list, assert_stripe_shape

# the SDK's httpx transport passes bytes as data=, which httpx deprecates
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")
T = TypeVar("T")

# Fields stripe-node's types/Charges.d.ts declares without `?` (always present, null when
# unset): stripe-python writes "nullable" and "may be absent" alike, so these are asserted here.
ALWAYS_PRESENT = (
    "amount", "amount_captured", "amount_refunded", "application", "application_fee",
    "application_fee_amount", "balance_transaction", "billing_details",
    "calculated_statement_descriptor", "captured", "created", "currency", "customer",
    "description", "disputed", "failure_balance_transaction", "failure_code",
    "failure_message", "fraud_details", "livemode", "metadata", "on_behalf_of", "outcome",
    "paid", "payment_intent", "payment_method", "payment_method_details", "receipt_email",
    "receipt_number", "receipt_url", "refunded", "review", "shipping", "source",
    "source_transfer", "statement_descriptor", "statement_descriptor_suffix", "status",
    "transfer_data", "transfer_group")
CARD_ALWAYS_PRESENT = ("amount_authorized", "authorization_code", "brand", "checks", "country",
                       "exp_month", "exp_year", "funding", "installments", "last4", "mandate",
                       "network", "network_transaction_id", "regulated_status",
                       "three_d_secure", "wallet")


@pytest.fixture
async def api(kassa, merchant) -> AsyncIterator[str]:
    async with serving(create_app(kassa=kassa, key_cache_seconds=0.0)) as url:
        saved = (stripe.api_key, stripe.api_base)
        stripe.api_key, stripe.api_base = merchant["secret_key"], url
        try:
            yield url
        finally:
            stripe.api_key, stripe.api_base = saved


async def sdk(call: Callable[[], T]) -> T:
    """The SDK's synchronous calls, off the loop the server runs on."""
    return await asyncio.to_thread(call)


def assert_full_charge(charge: dict[str, Any]) -> None:
    assert_stripe_shape(charge, "Charge")
    assert [f for f in ALWAYS_PRESENT if f not in charge] == []
    card = charge["payment_method_details"]["card"]
    assert [f for f in CARD_ALWAYS_PRESENT if f not in card] == []


async def sim_authorization(sim: httpx.AsyncClient, charge_id: str) -> dict[str, Any]:
    """The simulator's own record of the authorisation kassa sent as ``charge_id``."""
    books = (await sim.get("/_sim/authorizations")).json()
    auth_id = next(a["id"] for a in books if a["idempotency_key"] == charge_id)
    return (await sim.get(f"/v1/authorizations/{auth_id}")).json()


async def test_charges_through_the_sdk(api, auth, sim, kassa):
    with pytest.raises(stripe.CardError):
        await sdk(lambda: stripe.PaymentIntent.create(
            amount=2000, currency="usd", capture_method="manual", confirm=True,
            payment_method="pm_card_chargeDeclined", description="order 9",
            metadata={"order": "9"}))
    declined = (await sdk(lambda: stripe.PaymentIntent.list(limit=1))).data[0]
    failed_charge_id = declined.latest_charge
    pi = await sdk(lambda: stripe.PaymentIntent.confirm(declined.id,
                                                         payment_method="pm_card_visa"))
    assert pi.status == "requires_capture" and pi.latest_charge != failed_charge_id
    await sdk(lambda: stripe.PaymentIntent.capture(pi.id, amount_to_capture=1500))
    refund = await sdk(lambda: stripe.Refund.create(charge=pi.latest_charge, amount=500))
    assert (refund.payment_intent, refund.charge, refund.status) == (pi.id, pi.latest_charge,
                                                                    "succeeded")

    # both attempts are charges of the intent, newest first
    listed = await sdk(lambda: stripe.Charge.list(payment_intent=pi.id))
    assert [c.id for c in listed.data] == [pi.latest_charge, failed_charge_id]
    charge = await sdk(lambda: stripe.Charge.retrieve(pi.latest_charge))
    assert (charge.amount, charge.amount_captured, charge.captured, charge.paid,
            charge.status) == (2000, 1500, True, True, "succeeded")
    # the uncaptured 500 was released, 500 of the captured refunded
    assert (charge.amount_refunded, charge.refunded) == (1000, False)
    assert charge.refunds.data[0].id == refund.id
    assert charge.outcome.network_status == "approved_by_network"
    assert charge.outcome.type == "authorized"
    card = charge.payment_method_details.card
    assert (card.brand, card.last4, card.exp_month, card.exp_year, card.funding) == (
        "visa", "4242", 12, 2034, "credit")
    assert charge.payment_method == "pm_card_visa" and charge.metadata["order"] == "9"
    assert charge.description == "order 9"

    # the simulator's books and kassa's ledger agree with the charge
    books = await sim_authorization(sim, charge.id)
    assert (books["amount_captured"], books["amount_refunded"], books["last4"]) == (1500, 500,
                                                                                   "4242")
    expanded = await sdk(lambda: stripe.PaymentIntent.retrieve(
        pi.id, expand=["latest_charge.balance_transaction"]))
    bt = expanded.latest_charge.balance_transaction
    assert (bt.id, bt.amount, bt.source, bt.type) == (charge.balance_transaction, 1500,
                                                       charge.id, "charge")
    captured = await kassa.pool.fetchval(
        "SELECT sum(e.amount) FROM ledger_transactions t JOIN ledger_entries e"
        " ON e.transaction_id = t.id WHERE t.kind = 'capture' AND t.source_id = $1"
        " AND e.account LIKE 'psp:%' AND e.layer = 'posted'", pi.id)
    assert captured == charge.amount_captured

    failed = await sdk(lambda: stripe.Charge.retrieve(failed_charge_id))
    assert (failed.status, failed.paid, failed.captured, failed.amount_captured) == (
        "failed", False, False, 0)
    assert (failed.failure_code, failed.outcome.type, failed.outcome.reason) == (
        "card_declined", "issuer_declined", "generic_decline")
    assert failed.payment_method_details.card.last4 == "0002"
    assert failed.balance_transaction is None
    assert (await sim_authorization(sim, failed.id))["decline_code"] == "generic_decline"

    # the objects as sent, against the SDK's declarations
    async with httpx.AsyncClient(base_url=api, headers=auth) as http:
        for charge_id in (charge.id, failed.id):
            assert_full_charge((await http.get(f"/v1/charges/{charge_id}")).json())
        page = (await http.get("/v1/charges", params={"payment_intent": pi.id})).json()
        assert_stripe_list(page, "Charge")
        events = (await http.get("/v1/events", params={"limit": 100})).json()["data"]
    by_type = {e["type"]: e for e in events if e["data"]["object"].get("payment_intent")
               == pi.id and e["type"].startswith("charge.")}
    assert set(by_type) == {"charge.failed", "charge.succeeded", "charge.captured",
                            "charge.refunded", "charge.refund.updated"}
    for e in by_type.values():
        assert_stripe_shape(e, "Event")
    assert by_type["charge.captured"]["data"]["object"]["amount_captured"] == 1500
    assert by_type["charge.refunded"]["data"]["object"]["amount_refunded"] == 1000
    assert by_type["charge.refund.updated"]["data"]["object"]["id"] == refund.id


async def test_listing_paging_filters_and_expansions(api, auth):
    ids = []
    for _ in range(5):
        pi = await sdk(lambda: stripe.PaymentIntent.create(
            amount=700, currency="eur", confirm=True, payment_method="pm_card_mastercard"))
        ids.append(pi.latest_charge)
    seen = await sdk(lambda: [c.id for c in stripe.Charge.list(limit=2).auto_paging_iter()])
    assert seen[:5] == ids[::-1]
    async_seen = [c.id async for c in (await stripe.Charge.list_async(limit=2))
                  .auto_paging_iter()]
    assert async_seen == seen
    first = await sdk(lambda: stripe.Charge.retrieve(ids[0]))
    since = await sdk(lambda: stripe.Charge.list(created={"gte": first.created}, limit=100))
    assert set(ids) <= {c.id for c in since.data}
    before = await sdk(lambda: stripe.Charge.list(created={"lt": first.created}, limit=100))
    assert not set(ids) & {c.id for c in before.data}
    assert all(c.created < first.created for c in before.data)
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        await sdk(lambda: stripe.Charge.list(customer="cus_1"))
    assert unknown.value.param == "customer"
    with pytest.raises(stripe.InvalidRequestError):
        await sdk(lambda: stripe.Charge.list(starting_after="ch_nope"))
    with pytest.raises(stripe.InvalidRequestError) as missing:
        await sdk(lambda: stripe.Charge.retrieve("ch_nope"))
    assert missing.value.http_status == 404

    listed = await sdk(lambda: stripe.PaymentIntent.list(limit=3,
                                                          expand=["data.latest_charge"]))
    assert [p.latest_charge.id for p in listed.data] == ids[:-4:-1]
    assert listed.data[0].latest_charge.object == "charge"
    with_method = await sdk(lambda: stripe.PaymentIntent.retrieve(
        listed.data[0].id, expand=["payment_method", "latest_charge"]))
    assert with_method.payment_method.card.last4 == "4444"
    assert with_method.latest_charge.payment_method_details.card.brand == "mastercard"
    charge = await sdk(lambda: stripe.Charge.retrieve(ids[0],
                                                      expand=["balance_transaction",
                                                              "payment_intent"]))
    assert charge.balance_transaction.amount == 700 and charge.payment_intent.amount == 700
    async with httpx.AsyncClient(base_url=api, headers=auth) as http:
        bts = (await http.get("/v1/balance_transactions",
                              params={"source": ids[0], "expand[]": "data.source"})).json()
        assert bts["data"][0]["source"]["id"] == ids[0]
        assert_stripe_shape(bts["data"][0]["source"], "Charge")
        refund = (await http.post("/v1/refunds", data={
            "charge": ids[0], "amount": "100", "expand[0]": "charge",
            "expand[1]": "payment_intent"})).json()
        assert refund["charge"]["amount_refunded"] == 100
        assert refund["payment_intent"]["id"] == charge.payment_intent.id
        r = await http.get(f"/v1/refunds/{refund['id']}", params={"expand[]": "charge"})
        assert r.json()["charge"]["id"] == ids[0]
        assert_stripe_shape(r.json(), "Refund")
        page = (await http.get(f"/v1/charges/{ids[0]}/refunds")).json()
        assert [x["id"] for x in page["data"]] == [refund["id"]]

    for bad in (["nope"], ["latest_charge.nope"], ["data.latest_charge"],
                ["latest_charge.balance_transaction.source.payment_intent.latest_charge"]):
        with pytest.raises(stripe.InvalidRequestError) as refused:
            await sdk(lambda bad=bad: stripe.PaymentIntent.retrieve(listed.data[0].id,
                                                                    expand=bad))
        assert refused.value.http_status == 400, bad
        assert "cannot expand" in str(refused.value) or "cannot be expanded" in \
            str(refused.value)
    with pytest.raises(stripe.InvalidRequestError) as on_list:
        await sdk(lambda: stripe.PaymentIntent.list(expand=["latest_charge"]))
    assert "data.latest_charge" in str(on_list.value)


async def test_an_unknown_expansion_on_create_charges_nothing(api, auth, kassa):
    before = await kassa.pool.fetchval("SELECT count(*) FROM charges")
    with pytest.raises(stripe.InvalidRequestError) as refused:
        await sdk(lambda: stripe.PaymentIntent.create(
            amount=900, currency="usd", confirm=True, payment_method="pm_card_visa",
            expand=["latest_charge.nope"]))
    assert "This property cannot be expanded (latest_charge.nope)." in str(refused.value)
    assert await kassa.pool.fetchval("SELECT count(*) FROM charges") == before
    pi = await sdk(lambda: stripe.PaymentIntent.create(
        amount=900, currency="usd", confirm=True, payment_method="pm_card_amex",
        expand=["latest_charge.balance_transaction"]))
    assert pi.latest_charge.balance_transaction.amount == 900
    assert pi.latest_charge.payment_method_details.card.last4 == "0005"


async def test_the_receipt_page_needs_its_token_not_a_key(api, merchant):
    pi = await sdk(lambda: stripe.PaymentIntent.create(
        amount=1234, currency="usd", confirm=True, payment_method="pm_card_visa",
        description="<b>tea</b>"))
    charge = await sdk(lambda: stripe.Charge.retrieve(pi.latest_charge))
    assert charge.receipt_url.startswith("http") and charge.id in charge.receipt_url
    path = "/" + charge.receipt_url.split("/", 3)[3]
    async with httpx.AsyncClient(base_url=api) as anonymous:
        r = await anonymous.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "12.34 USD" in r.text and "Visa ending in 4242" in r.text
        assert "&lt;b&gt;tea&lt;/b&gt;" in r.text and "<b>tea" not in r.text
        assert merchant["merchant_id"] not in r.text
        token = path.rsplit("/", 1)[1]
        for wrong in (path[:-1] + ("A" if path[-1] != "A" else "B"),
                      f"/receipts/{charge.id}/", f"/receipts/ch_nope/{token}"):
            assert (await anonymous.get(wrong)).status_code == 404, wrong


async def test_another_merchants_charges_are_not_found(client, auth, kassa):
    from kassa.services import merchants

    other = await merchants.create_merchant(kassa, name="Other merchant")
    theirs = {"Authorization": f"Bearer {other['secret_key']}"}
    pi = (await client.post("/v1/payment_intents", headers=auth, data={
        "amount": "800", "currency": "usd", "payment_method": "pm_card_visa",
        "confirm": "true"})).json()
    charge_id = pi["latest_charge"]
    assert (await client.get(f"/v1/charges/{charge_id}", headers=auth)).status_code == 200
    for path in (f"/v1/charges/{charge_id}", f"/v1/charges/{charge_id}/refunds"):
        r = await client.get(path, headers=theirs)
        assert r.status_code == 404 and r.json()["error"]["code"] == "resource_missing"
    listed = (await client.get("/v1/charges", headers=theirs,
                               params={"payment_intent": pi["id"]})).json()
    assert listed["data"] == []
    r = await client.post("/v1/refunds", headers=theirs, data={"charge": charge_id})
    assert r.status_code == 400 and r.json()["error"]["param"] == "charge"
    r = await client.get(f"/v1/payment_intents/{pi['id']}", headers=auth,
                         params={"expand[]": "latest_charge"})
    assert r.json()["latest_charge"]["id"] == charge_id
    assert (await client.get("/v1/charges", headers={})).status_code == 401


async def test_a_replayed_answer_keeps_its_expansions(client, auth):
    headers = {**auth, "Idempotency-Key": "expand-replay"}
    data = {"amount": "650", "currency": "usd", "payment_method": "pm_card_visa",
            "confirm": "true", "expand[]": "latest_charge.balance_transaction"}
    first = await client.post("/v1/payment_intents", headers=headers, data=data)
    again = await client.post("/v1/payment_intents", headers=headers, data=data)
    assert again.headers["idempotent-replayed"] == "true"
    assert first.json() == again.json()
    assert again.json()["latest_charge"]["balance_transaction"]["amount"] == 650


async def test_expand_in_a_json_body(client, auth):
    r = await client.post("/v1/payment_intents", headers=auth, json={
        "amount": 420, "currency": "usd", "payment_method": "pm_card_visa",
        "capture_method": "manual", "confirm": True, "expand": ["latest_charge"]})
    assert r.status_code == 200, r.text
    charge = r.json()["latest_charge"]
    assert (charge["object"], charge["captured"], charge["amount_captured"]) == ("charge",
                                                                                False, 0)
    r = await client.post(f"/v1/payment_intents/{r.json()['id']}/capture", headers=auth,
                          json={"expand": ["latest_charge.balance_transaction"]})
    assert r.json()["latest_charge"]["balance_transaction"]["amount"] == 420
    r = await client.post("/v1/payment_intents", headers=auth, json={
        "amount": 420, "currency": "usd", "expand": ["latest_charge", 7]})
    assert r.status_code == 400
