"""PaymentIntent as a Stripe integration uses it (issue 10, items 3-5 and 8): the fields it
sends are kept and echoed, updates follow the status, the client_secret lets a publishable
key read and confirm, declines carry the charge and the card, and each object has the shape
stripe-python declares. Where money moves, the simulator's record and the ledger agree."""

from __future__ import annotations

import re

import httpx
import pytest

from kassa.ledger.verify import verify
from kassa.representations.payment_intents import PUBLISHABLE_FIELDS
from tests.support.stripe_schema import assert_stripe_list, assert_stripe_shape

# stripe-node's PaymentIntent fields without `?` (always present, null when unset), beyond
# what stripe-python declares non-optional: an SDK reading one that is absent fails
ALWAYS_PRESENT = {
    "application", "application_fee_amount", "automatic_payment_methods", "canceled_at",
    "cancellation_reason", "client_secret", "customer", "customer_account", "description",
    "last_payment_error", "latest_charge", "next_action", "on_behalf_of", "payment_method",
    "payment_method_configuration_details", "payment_method_options", "processing",
    "receipt_email", "review", "setup_future_usage", "shipping", "source",
    "statement_descriptor", "statement_descriptor_suffix", "transfer_group",
}
SHIPPING = {"shipping[name]": "Ada Lovelace", "shipping[address][line1]": "1 Analytical St",
            "shipping[address][city]": "London", "shipping[address][country]": "GB",
            "shipping[phone]": "+441234", "shipping[tracking_number]": "TRK1"}


def form(**params: object) -> dict[str, str]:
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()}


async def create(client, auth, **params: object) -> httpx.Response:
    data = {"amount": 2000, "currency": "usd", **params}
    return await client.post("/v1/payment_intents", headers=auth,
                             data=form(**data))


@pytest.fixture
def pk(merchant) -> dict[str, str]:
    return {"Authorization": f"Bearer {merchant['publishable_key']}"}


async def sim_auth(sim, charge_id: str) -> dict:
    rows = (await sim.get("/_sim/authorizations")).json()
    return next(a for a in rows if a["idempotency_key"] == charge_id)


async def merchant_balance(kassa, merchant_id: str) -> int:
    """What the ledger owes the merchant (pending + available), in minor units."""
    return -int(await kassa.pool.fetchval(
        "SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE account = ANY($1::text[])"
        " AND layer = 'posted'",
        [f"merchant:{merchant_id}:pending", f"merchant:{merchant_id}:available"]))


async def test_the_fields_integrations_send_are_kept_and_every_field_is_present(client, auth):
    r = await client.post("/v1/payment_intents", headers=auth, data={
        "amount": "2000", "currency": "usd", "receipt_email": "ada@example.com",
        "statement_descriptor": "KASSA SHOP", "statement_descriptor_suffix": "ORDER 7",
        "setup_future_usage": "off_session", "confirmation_method": "manual",
        "capture_method": "automatic_async", "automatic_payment_methods[enabled]": "true",
        "automatic_payment_methods[allow_redirects]": "never", **SHIPPING})
    assert r.status_code == 200, r.text
    pi = r.json()
    assert_stripe_shape(pi, "PaymentIntent")
    assert ALWAYS_PRESENT <= set(pi) and "amount_refunded" not in pi
    assert (pi["receipt_email"], pi["statement_descriptor"], pi["statement_descriptor_suffix"],
            pi["setup_future_usage"], pi["confirmation_method"], pi["capture_method"]) == (
        "ada@example.com", "KASSA SHOP", "ORDER 7", "off_session", "manual", "automatic_async")
    assert pi["automatic_payment_methods"] == {"enabled": True, "allow_redirects": "never"}
    assert pi["shipping"] == {
        "name": "Ada Lovelace", "phone": "+441234", "tracking_number": "TRK1", "carrier": None,
        "address": {"line1": "1 Analytical St", "line2": None, "city": "London",
                    "country": "GB", "postal_code": None, "state": None}}
    assert re.fullmatch(rf"{pi['id']}_secret_[0-9A-Za-z]{{24}}", pi["client_secret"])
    got = (await client.get(f"/v1/payment_intents/{pi['id']}", headers=auth)).json()
    assert got == pi  # stored, not only echoed
    other = (await create(client, auth)).json()
    assert other["client_secret"] != pi["client_secret"]
    assert (other["confirmation_method"], other["capture_method"], other["shipping"],
            other["automatic_payment_methods"]) == ("automatic", "automatic", None, None)


@pytest.mark.parametrize(("params", "param", "code"), [
    ({"statement_descriptor": "X" * 23}, "statement_descriptor", "parameter_invalid"),
    ({"statement_descriptor": "12345"}, "statement_descriptor", "parameter_invalid"),
    ({"statement_descriptor_suffix": "SHOP*7"}, "statement_descriptor_suffix",
     "parameter_invalid"),
    ({"statement_descriptor_suffix": "CAFÉ"}, "statement_descriptor_suffix",
     "parameter_invalid"),
    ({"receipt_email": "not-an-email"}, "receipt_email", "email_invalid"),
    ({"setup_future_usage": "sometimes"}, "setup_future_usage", "parameter_invalid"),
    ({"customer": "cus_nope"}, "customer", "resource_missing"),
    ({"payment_method_options[card][capture_method]": "automatic"},
     "payment_method_options[card][capture_method]", "parameter_invalid"),
    ({"shipping[address][line1]": "no name"}, "shipping[name]", "parameter_missing"),
    ({"automatic_payment_methods[allow_redirects]": "never"},
     "automatic_payment_methods[enabled]", "parameter_missing"),
    ({"transfer_data[destination]": "acct_1"}, "transfer_data", "parameter_unknown"),
    ({"on_behalf_of": "acct_1"}, "on_behalf_of", "parameter_unknown"),
    ({"automatic_payment_methods[enabled]": "true", "payment_method_types[]": "card"},
     "automatic_payment_methods", "parameters_exclusive"),
])
async def test_bad_or_unsupported_parameters_are_clear_400s(client, auth, params, param, code):
    r = await client.post("/v1/payment_intents", headers=auth,
                          data={"amount": "100", "currency": "usd", **params})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert (err["type"], err["param"], err["code"]) == ("invalid_request_error", param, code)


async def test_automatic_async_captures_like_automatic(client, auth, sim, kassa, merchant):
    pi = (await create(client, auth, capture_method="automatic_async",
                       payment_method="pm_card_visa", confirm=True)).json()
    assert (pi["status"], pi["capture_method"], pi["amount_received"]) == (
        "succeeded", "automatic_async", 2000)
    record = await sim_auth(sim, pi["latest_charge"])
    assert (record["status"], record["amount_captured"]) == ("captured", 2000)
    assert await merchant_balance(kassa, merchant["merchant_id"]) == 2000 - 88


async def test_card_options_capture_manual_overrides_the_intents(client, auth, sim, kassa,
                                                                 merchant):
    pi = (await create(client, auth, payment_method="pm_card_visa",
                       **{"payment_method_options[card][capture_method]": "manual"})).json()
    assert pi["capture_method"] == "automatic"
    assert pi["payment_method_options"]["card"]["capture_method"] == "manual"
    assert_stripe_shape(pi, "PaymentIntent")
    r = await client.post(f"/v1/payment_intents/{pi['id']}/confirm", headers=auth)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["amount_capturable"]) == ("requires_capture", 2000)
    record = await sim_auth(sim, pi["latest_charge"] or r.json()["latest_charge"])
    assert (record["status"], record["amount_captured"]) == ("authorized", 0)
    assert await merchant_balance(kassa, merchant["merchant_id"]) == 0  # a hold only
    r = await client.post(f"/v1/payment_intents/{pi['id']}/capture", headers=auth)
    assert r.json()["status"] == "succeeded"
    assert (await sim_auth(sim, r.json()["latest_charge"]))["amount_captured"] == 2000
    assert await merchant_balance(kassa, merchant["merchant_id"]) == 2000 - 88


async def test_update_before_confirmation_changes_the_terms_charged(client, auth, sim, kassa,
                                                                    merchant):
    pi = (await create(client, auth, **{"metadata[order]": "1", "metadata[keep]": "k"})).json()
    url = f"/v1/payment_intents/{pi['id']}"
    r = await client.post(url, headers=auth, data={
        "amount": "1500", "currency": "eur", "description": "two books",
        "metadata[order]": "2", "metadata[keep]": "", "metadata[new]": "n",
        "receipt_email": "bob@example.com", "statement_descriptor_suffix": "BOOKS",
        "payment_method": "pm_card_mastercard", **SHIPPING})
    assert r.status_code == 200, r.text
    up = r.json()
    assert (up["amount"], up["currency"], up["description"], up["status"],
            up["payment_method"], up["receipt_email"]) == (
        1500, "eur", "two books", "requires_confirmation", "pm_card_mastercard",
        "bob@example.com")
    assert up["metadata"] == {"order": "2", "new": "n"}
    assert up["shipping"]["name"] == "Ada Lovelace"
    assert up["client_secret"] == pi["client_secret"]
    assert_stripe_shape(up, "PaymentIntent")
    r = await client.post(url, headers=auth, data={"receipt_email": "", "shipping": ""})
    assert (r.json()["receipt_email"], r.json()["shipping"]) == (None, None)
    done = (await client.post(f"{url}/confirm", headers=auth)).json()
    assert (done["status"], done["amount_received"]) == ("succeeded", 1500)
    record = await sim_auth(sim, done["latest_charge"])
    assert (record["amount"], record["currency"], record["amount_captured"]) == (1500, "eur",
                                                                                1500)
    fee = await kassa.pool.fetchval("SELECT fee FROM balance_transactions WHERE source = $1",
                                    done["latest_charge"])
    owed = -int(await kassa.pool.fetchval(
        "SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE account = $1 AND"
        " currency = 'eur' AND layer = 'posted'", f"merchant:{merchant['merchant_id']}:pending"))
    assert owed == 1500 - fee
    assert (await verify(kassa.pool)).ok


async def test_after_confirmation_only_descriptive_fields_change(client, auth):
    pi = (await create(client, auth, payment_method="pm_card_visa", confirm=True,
                       capture_method="manual")).json()
    url = f"/v1/payment_intents/{pi['id']}"
    for params in ({"amount": "10"}, {"currency": "eur"}, {"payment_method": "pm_card_visa"},
                   {"statement_descriptor_suffix": "LATE"}, {"capture_method": "automatic"}):
        r = await client.post(url, headers=auth, data=params)
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert (err["code"], err["param"]) == ("payment_intent_unexpected_state",
                                               next(iter(params)))
    got = (await client.get(url, headers=auth)).json()
    assert (got["amount"], got["status"], got["amount_capturable"]) == (2000,
                                                                        "requires_capture", 2000)
    r = await client.post(url, headers=auth, data={"metadata[shipped]": "yes",
                                                   "description": "packed"})
    assert r.status_code == 200 and r.json()["metadata"] == {"shipped": "yes"}
    await client.post(f"{url}/cancel", headers=auth)
    r = await client.post(url, headers=auth, data={"description": "gone"})
    assert r.status_code == 400 and "status of canceled" in r.json()["error"]["message"]


async def test_updates_are_idempotent_and_refuse_unknown_fields(client, auth):
    pi = (await create(client, auth)).json()
    url = f"/v1/payment_intents/{pi['id']}"
    key = {**auth, "Idempotency-Key": f"upd-{pi['id']}"}
    first = await client.post(url, headers=key, data={"amount": "700"})
    again = await client.post(url, headers=key, data={"amount": "700"})
    assert first.status_code == again.status_code == 200
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == first.json()
    r = await client.post(url, headers=key, data={"amount": "800"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "idempotency_error"
    r = await client.post(url, headers=auth, data={"confirmation_method": "manual"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "parameter_unknown"
    r = await client.post(url, headers=auth, data={"customer": "cus_1"})
    assert (r.status_code, r.json()["error"]["param"]) == (400, "customer")
    r = await client.post("/v1/payment_intents/pi_nope", headers=auth, data={"amount": "5"})
    assert r.status_code == 404


async def test_a_publishable_key_reads_and_confirms_with_the_client_secret(
        client, auth, pk, sim, kassa, merchant):
    pi = (await create(client, auth, **{"metadata[order]": "9"})).json()
    url = f"/v1/payment_intents/{pi['id']}"
    r = await client.get(url, headers=pk, params={"client_secret": pi["client_secret"]})
    assert r.status_code == 200, r.text
    view = r.json()
    assert tuple(view) == PUBLISHABLE_FIELDS and "metadata" not in view
    assert (view["id"], view["amount"], view["client_secret"]) == (pi["id"], 2000,
                                                                    pi["client_secret"])
    # a secret one character off: flipped, so a secret that already ends in "x" still differs
    forged = pi["client_secret"][:-1] + ("y" if pi["client_secret"].endswith("x") else "x")
    for params, code in (({}, "parameter_missing"),
                         ({"client_secret": forged},
                          "payment_intent_invalid_parameter")):
        r = await client.get(url, headers=pk, params=params)
        assert (r.status_code, r.json()["error"]["code"]) == (400, code)
    r = await client.post(f"{url}/confirm", headers=pk,
                          data={"payment_method": "pm_card_visa", "client_secret": "nope"})
    assert r.status_code == 400
    assert (await client.get(url, headers=auth)).json()["status"] == "requires_payment_method"
    r = await client.post(f"{url}/confirm", headers=pk, data={
        "payment_method": "pm_card_visa", "client_secret": pi["client_secret"]})
    assert r.status_code == 200, r.text
    assert tuple(r.json()) == PUBLISHABLE_FIELDS and r.json()["status"] == "succeeded"
    charge = (await client.get(url, headers=auth)).json()["latest_charge"]
    assert (await sim_auth(sim, charge))["amount_captured"] == 2000
    assert await merchant_balance(kassa, merchant["merchant_id"]) == 2000 - 88


async def test_a_publishable_key_can_do_nothing_else(client, auth, pk, merchant, kassa):
    from kassa.services import merchants

    pi = (await create(client, auth)).json()
    url = f"/v1/payment_intents/{pi['id']}"
    secret = {"client_secret": pi["client_secret"]}
    for method, path, data in (
            ("POST", "/v1/payment_intents", {"amount": "100", "currency": "usd"}),
            ("GET", "/v1/payment_intents", None), ("POST", url, {"amount": "1", **secret}),
            ("POST", f"{url}/capture", secret), ("POST", f"{url}/cancel", secret),
            ("POST", "/v1/refunds", {"payment_intent": pi["id"]}), ("GET", "/v1/balance", None),
            ("GET", "/v1/events", None), ("GET", "/v1/refunds", None)):
        r = await client.request(method, path, headers=pk, data=data)
        assert r.status_code in (401, 403), (method, path, r.text)
        assert r.json()["error"]["type"] == "invalid_request_error"
    other = await merchants.create_merchant(kassa, name="Other")
    r = await client.get(url, headers={"Authorization": f"Bearer {other['publishable_key']}"},
                         params=secret)
    assert r.status_code == 404  # another merchant's intent does not exist for this key


async def test_manual_confirmation_is_for_the_server_only(client, auth, pk):
    pi = (await create(client, auth, confirmation_method="manual",
                       payment_method="pm_card_visa")).json()
    url = f"/v1/payment_intents/{pi['id']}/confirm"
    r = await client.post(url, headers=pk, data={"client_secret": pi["client_secret"]})
    assert (r.status_code, r.json()["error"]["code"]) == (400,
                                                          "payment_intent_unexpected_state")
    r = await client.post(url, headers=auth)
    assert r.status_code == 200 and r.json()["status"] == "succeeded"


async def test_a_decline_carries_the_charge_and_the_card(client, auth, pk, sim, kassa,
                                                         merchant):
    r = await create(client, auth, payment_method="pm_card_chargeDeclinedInsufficientFunds",
                     confirm=True)
    assert r.status_code == 402, r.text
    err = r.json()["error"]
    assert err["type"] == "card_error" and err["decline_code"] == "insufficient_funds"
    assert err["charge"] == err["payment_intent"]["latest_charge"]
    assert err["charge"].startswith("ch_")
    card = err["payment_method"]
    assert_stripe_shape(card, "PaymentMethod")
    assert (card["id"], card["type"], card["card"]["brand"], card["card"]["last4"],
            card["card"]["exp_month"], card["card"]["exp_year"], card["card"]["funding"]) == (
        "pm_card_chargeDeclinedInsufficientFunds", "card", "visa", "9995", 12, 2034, "credit")
    assert "9995" not in str({k: v for k, v in card.items() if k != "card"})
    assert_stripe_shape(err["payment_intent"], "PaymentIntent")
    lpe = err["payment_intent"]["last_payment_error"]
    assert lpe["payment_method"] == card and lpe["charge"] == err["charge"]
    record = await sim_auth(sim, err["charge"])
    assert (record["status"], record["amount_captured"]) == ("declined", 0)
    assert await merchant_balance(kassa, merchant["merchant_id"]) == 0
    # a publishable key's decline shows the reduced intent, the card and the charge
    pi = (await create(client, auth)).json()
    r = await client.post(f"/v1/payment_intents/{pi['id']}/confirm", headers=pk, data={
        "payment_method": "pm_card_chargeDeclined", "client_secret": pi["client_secret"]})
    assert r.status_code == 402
    err = r.json()["error"]
    assert tuple(err["payment_intent"]) == PUBLISHABLE_FIELDS
    assert err["payment_method"]["card"]["last4"] == "0002" and err["charge"]


async def test_refund_update_cancel_and_shape(client, auth, sim, kassa, merchant):
    pi = (await create(client, auth, payment_method="pm_card_visa", confirm=True)).json()
    r = await client.post("/v1/refunds", headers=auth, data={
        "payment_intent": pi["id"], "amount": "500", "reason": "requested_by_customer",
        "metadata[ticket]": "T1", "metadata[agent]": "ann"})
    assert r.status_code == 200, r.text
    refund = r.json()
    assert_stripe_shape(refund, "Refund")
    assert "failure_reason" not in refund  # Stripe sends it only once a refund failed
    assert refund["payment_method"] == "pm_card_visa"
    url = f"/v1/refunds/{refund['id']}"
    r = await client.post(url, headers=auth, data={"metadata[agent]": "",
                                                   "metadata[note]": "goodwill"})
    assert r.status_code == 200, r.text
    assert r.json()["metadata"] == {"ticket": "T1", "note": "goodwill"}
    assert (await client.get(url, headers=auth)).json()["metadata"] == r.json()["metadata"]
    events = (await client.get("/v1/events", headers=auth,
                               params={"type": "refund.updated"})).json()["data"]
    assert events[0]["data"]["object"]["metadata"] == r.json()["metadata"]
    assert_stripe_shape(events[0], "Event")
    r = await client.post(url, headers=auth, data={"amount": "1"})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "parameter_unknown")
    r = await client.post(f"{url}/cancel", headers=auth)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"] == (
        "You cannot cancel this Refund because it has a status of succeeded.")
    got = (await client.get(url, headers=auth)).json()
    assert got["status"] == "succeeded"  # nothing changed: the PSP already paid it back
    assert (await sim_auth(sim, pi["latest_charge"]))["amount_refunded"] == 500
    assert await merchant_balance(kassa, merchant["merchant_id"]) == 2000 - 88 - 500
    r = await client.post("/v1/refunds/re_nope/cancel", headers=auth)
    assert r.status_code == 404
    r = await client.post("/v1/refunds", headers=auth, data={"payment_intent": pi["id"],
                                                             "reason": "changed_mind"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "reason"
    assert "duplicate, fraudulent, or requested_by_customer" in r.json()["error"]["message"]


async def test_every_object_has_the_shape_stripe_python_declares(client, auth):
    pi = (await create(client, auth, payment_method="pm_card_visa", confirm=True)).json()
    await client.post("/v1/refunds", headers=auth, data={"payment_intent": pi["id"],
                                                         "amount": "100"})
    assert_stripe_list((await client.get("/v1/payment_intents", headers=auth)).json(),
                       "PaymentIntent")
    assert_stripe_list((await client.get("/v1/refunds", headers=auth)).json(), "Refund")
    assert_stripe_list((await client.get("/v1/balance_transactions", headers=auth)).json(),
                       "BalanceTransaction")
    assert_stripe_shape((await client.get("/v1/balance", headers=auth)).json(), "Balance")
    endpoint = (await client.post("/v1/webhook_endpoints", headers=auth, data={
        "url": "https://merchant.example/hooks", "enabled_events[]": "*"})).json()
    assert_stripe_shape(endpoint, "WebhookEndpoint")
    await client.delete(f"/v1/webhook_endpoints/{endpoint['id']}", headers=auth)
    events = (await client.get("/v1/events", headers=auth)).json()
    assert events["object"] == "list" and events["data"]
    for event in events["data"]:
        if event["data"]["object"]["object"] != "charge":  # the Charge is stripe-charges'
            assert_stripe_shape(event, "Event")
