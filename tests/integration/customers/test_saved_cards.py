"""Cards saved to customers: attach, detach, update, list; an intent's customer; a card saved
by setup_future_usage and charged again off-session without its CVC — counted at the
simulator's own books and in kassa's ledger."""

from __future__ import annotations

import asyncio

from tests.support.stripe_schema import assert_stripe_shape
from tests.support.vault import tokenise


def _auth(shop):
    return {"Authorization": f"Bearer {shop['secret_key']}"}


async def _customer(api, shop, **data):
    r = await api.post("/v1/customers", headers=_auth(shop), data=data)
    assert r.status_code == 200, r.text
    return r.json()["id"]


async def _card(vault, shop, number="4242424242424242", **kw):
    r = await tokenise(vault.url, shop["publishable_key"], number, **kw)
    assert r.status_code == 200, r.text
    return r.json()["id"]


async def test_attach_list_default_detach(api, vault, shop):
    h = _auth(shop)
    cus = await _customer(api, shop, email="saved@example.com")
    first, second = await _card(vault, shop), await _card(vault, shop, "5555555555554444")
    r = await api.post(f"/v1/payment_methods/{first}/attach", headers=h, data={"customer": cus})
    assert r.status_code == 200, r.text
    assert r.json()["customer"] == cus
    assert_stripe_shape(r.json(), "PaymentMethod")
    again = await api.post(f"/v1/payment_methods/{first}/attach", headers=h,
                           data={"customer": cus})
    assert again.json() == r.json()  # attached already: the same object
    await api.post(f"/v1/payment_methods/{second}/attach", headers=h, data={"customer": cus})
    r = await api.get(f"/v1/customers/{cus}/payment_methods", headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["url"] == f"/v1/customers/{cus}/payment_methods"
    assert {pm["id"] for pm in r.json()["data"]} == {first, second}
    r = await api.get("/v1/payment_methods", headers=h,
                      params={"customer": cus, "type": "card", "limit": 1})
    assert len(r.json()["data"]) == 1 and r.json()["has_more"] is True
    newest = r.json()["data"][0]["id"]
    r = await api.get("/v1/payment_methods", headers=h,
                      params={"customer": cus, "starting_after": newest})
    assert [pm["id"] for pm in r.json()["data"]] == [({first, second} - {newest}).pop()]
    r = await api.get("/v1/payment_methods", headers=h)
    assert r.status_code == 400 and r.json()["error"]["param"] == "customer"

    r = await api.post(f"/v1/customers/{cus}", headers=h,
                       data={"invoice_settings[default_payment_method]": first})
    assert r.json()["invoice_settings"]["default_payment_method"] == first
    r = await api.get(f"/v1/customers/{cus}", headers=h,
                      params={"expand[]": "invoice_settings.default_payment_method"})
    assert r.status_code == 400  # not an expandable path in kassa (an id stays an id)

    r = await api.post(f"/v1/payment_methods/{first}/detach", headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["customer"] is None
    r = await api.get(f"/v1/customers/{cus}", headers=h)
    assert r.json()["invoice_settings"]["default_payment_method"] is None
    r = await api.post(f"/v1/payment_methods/{first}/detach", headers=h)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "payment_method_unexpected_state"
    r = await api.get("/v1/events", headers=h, params={"type": "payment_method.*"})
    assert [e["type"] for e in r.json()["data"]][:1] == ["payment_method.detached"]


async def test_attach_refusals(api, vault, shop):
    h = _auth(shop)
    mine, theirs = await _customer(api, shop), await _customer(api, shop)
    pm = await _card(vault, shop)
    await api.post(f"/v1/payment_methods/{pm}/attach", headers=h, data={"customer": mine})
    r = await api.post(f"/v1/payment_methods/{pm}/attach", headers=h, data={"customer": theirs})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "payment_method_unexpected_state"
    r = await api.post("/v1/payment_methods/pm_card_visa/attach", headers=h,
                       data={"customer": mine})
    assert r.status_code == 400 and "test shortcut" in r.json()["error"]["message"]
    r = await api.post("/v1/payment_methods/pm_nope/attach", headers=h, data={"customer": mine})
    assert r.status_code == 404
    r = await api.post(f"/v1/payment_methods/{pm}/attach", headers=h,
                       data={"customer": "cus_nope"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "customer"
    assert r.json()["error"]["code"] == "resource_missing"
    r = await api.post(f"/v1/payment_methods/{pm}/attach", headers=h)
    assert r.status_code == 400 and r.json()["error"]["param"] == "customer"


async def test_update_a_saved_card(api, vault, shop):
    h = _auth(shop)
    pm = await _card(vault, shop)
    r = await api.post(f"/v1/payment_methods/{pm}", headers=h, data={"metadata[a]": "1"})
    assert r.status_code == 400  # Stripe: only a card saved to a customer
    cus = await _customer(api, shop)
    await api.post(f"/v1/payment_methods/{pm}/attach", headers=h, data={"customer": cus})
    r = await api.post(f"/v1/payment_methods/{pm}", headers=h, data={
        "billing_details[name]": "J. Rosen", "billing_details[address][postal_code]": "10115",
        "metadata[a]": "1", "card[exp_month]": "3", "card[exp_year]": "2040"})
    assert r.status_code == 200, r.text
    updated = r.json()
    assert updated["billing_details"]["name"] == "J. Rosen"
    assert updated["billing_details"]["address"]["postal_code"] == "10115"
    assert (updated["card"]["exp_month"], updated["card"]["exp_year"]) == (3, 2040)
    assert updated["metadata"] == {"a": "1"} and updated["card"]["last4"] == "4242"
    # the vault reads the same row
    async with __import__("httpx").AsyncClient(base_url=vault.url) as c:
        r = await c.get(f"/v1/payment_methods/{pm}", auth=(shop["secret_key"], ""))
    assert r.status_code == 200, r.text
    assert r.json() == updated
    for data, code in (({"card[exp_month]": "13"}, "invalid_expiry_month"),
                       ({"card[exp_year]": "2001"}, "invalid_expiry_year")):
        r = await api.post(f"/v1/payment_methods/{pm}", headers=h, data=data)
        assert r.status_code == 400 and r.json()["error"]["code"] == code, r.text


async def test_deleting_a_customer_detaches_their_cards(api, vault, shop):
    h = _auth(shop)
    cus = await _customer(api, shop)
    pm = await _card(vault, shop)
    await api.post(f"/v1/payment_methods/{pm}/attach", headers=h, data={"customer": cus})
    await api.delete(f"/v1/customers/{cus}", headers=h)
    r = await api.get(f"/v1/payment_methods/{pm}", headers=h)
    assert r.json()["customer"] is None
    r = await api.get(f"/v1/customers/{cus}/payment_methods", headers=h)
    assert r.status_code == 404
    r = await api.get("/v1/payment_methods", headers=h, params={"customer": cus})
    assert r.status_code == 400 and r.json()["error"]["code"] == "resource_missing"


async def test_intent_customer_rules(api, vault, shop):
    h = _auth(shop)
    r = await api.post("/v1/payment_intents", headers=h, data={
        "amount": "500", "currency": "usd", "customer": "cus_nope"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "customer"
    assert r.json()["error"]["code"] == "resource_missing"
    cus, other = await _customer(api, shop), await _customer(api, shop)
    pm = await _card(vault, shop)
    await api.post(f"/v1/payment_methods/{pm}/attach", headers=h, data={"customer": cus})
    r = await api.post("/v1/payment_intents", headers=h, data={
        "amount": "500", "currency": "usd", "payment_method": pm, "confirm": "true"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "payment_method"
    r = await api.post("/v1/payment_intents", headers=h, data={
        "amount": "500", "currency": "usd", "payment_method": pm, "customer": other,
        "confirm": "true"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "payment_method"
    r = await api.post("/v1/payment_intents", headers=h, data={
        "amount": "500", "currency": "usd", "payment_method": "pm_card_visa",
        "customer": cus, "off_session": "true", "confirm": "true"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "off_session"
    r = await api.post("/v1/payment_intents", headers=h, data={
        "amount": "500", "currency": "usd", "payment_method": pm, "customer": cus,
        "off_session": "true"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "off_session"
    # set on update before confirmation, then fixed
    r = await api.post("/v1/payment_intents", headers=h, data={"amount": "500",
                                                               "currency": "usd"})
    pi = r.json()["id"]
    r = await api.post(f"/v1/payment_intents/{pi}", headers=h, data={"customer": cus})
    assert r.status_code == 200 and r.json()["customer"] == cus
    r = await api.post(f"/v1/payment_intents/{pi}", headers=h, data={"customer": other})
    assert r.status_code == 400 and r.json()["error"]["param"] == "customer"
    r = await api.get(f"/v1/payment_intents/{pi}", headers=h,
                      params={"expand[]": "customer"})
    assert r.json()["customer"]["id"] == cus and r.json()["customer"]["object"] == "customer"


async def test_saved_by_setup_future_usage_then_charged_off_session(api, vault, shop, sim):
    h = _auth(shop)
    cus = await _customer(api, shop, email="repeat@example.com")
    pm = await _card(vault, shop, "4000056655665556")  # visa debit, with a CVC
    r = await api.post("/v1/payment_intents", headers=h, data={
        "amount": "1500", "currency": "usd", "customer": cus, "payment_method": pm,
        "setup_future_usage": "off_session", "confirm": "true"})
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["status"] == "succeeded" and first["customer"] == cus
    assert first["setup_future_usage"] == "off_session"
    r = await api.get(f"/v1/payment_methods/{pm}", headers=h)
    assert r.json()["customer"] == cus  # saved by the successful payment
    r = await api.get("/v1/events", headers=h, params={"type": "payment_method.attached"})
    assert [e["data"]["object"]["id"] for e in r.json()["data"]][:1] == [pm]
    # the CVC was used by the first authorisation and is gone from the vault's memory
    assert vault.vault.cvcs.take(pm) is None
    r = await api.post("/v1/payment_intents", headers=h, data={
        "amount": "2500", "currency": "usd", "customer": cus, "payment_method": pm,
        "off_session": "true", "confirm": "true"})
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["status"] == "succeeded" and second["amount_received"] == 2500

    # both ends: the simulator authorised and captured exactly these two, for this merchant
    books = [a for a in (await sim.get("/_sim/authorizations")).json()
             if a["merchant_id"] == shop["merchant_id"]]
    ours = {first["latest_charge"], second["latest_charge"]}
    assert sorted(a["amount_captured"] for a in books if a["idempotency_key"] in ours) == \
        [1500, 2500]
    captured = await api.kassa.pool.fetchval(
        "SELECT sum(e.amount) FROM ledger_entries e JOIN ledger_transactions t"
        " ON t.id = e.transaction_id WHERE t.kind = 'capture' AND t.merchant_id = $1"
        " AND e.account LIKE 'psp:%:receivable' AND t.source_id = ANY($2)",
        shop["merchant_id"], [*ours, first["id"], second["id"]])
    assert captured == 4000


async def test_racing_attach_and_delete_leave_no_card_on_a_deleted_customer(api, vault, shop):
    h = _auth(shop)
    for _ in range(5):
        cus = await _customer(api, shop)
        pm = await _card(vault, shop)
        attach, delete = await asyncio.gather(
            api.post(f"/v1/payment_methods/{pm}/attach", headers=h, data={"customer": cus}),
            api.delete(f"/v1/customers/{cus}", headers=h))
        assert delete.status_code == 200
        r = await api.get(f"/v1/payment_methods/{pm}", headers=h)
        assert r.json()["customer"] is None, (attach.status_code, attach.text)


async def test_the_intents_customer_is_checked_in_the_cards_read(api, vault, shop):
    """The card and the intent's customer come from one read (vault/resolver.py): a live
    customer is not read again, an unknown or deleted one is still refused, at create and at
    confirm, before anything is written or sent."""
    h = _auth(shop)
    pm = await _card(vault, shop)
    live, gone, later = [await _customer(api, shop) for _ in range(3)]
    resolved = await api.kassa.payment_methods.lookup(  # type: ignore[attr-defined]
        merchant_id=shop["merchant_id"], payment_method=pm, customer=live)
    assert resolved.live_customer == live and resolved.row["id"] == pm
    assert (await api.delete(f"/v1/customers/{gone}", headers=h)).status_code == 200
    for customer in ("cus_nope", gone):
        resolved = await api.kassa.payment_methods.lookup(  # type: ignore[attr-defined]
            merchant_id=shop["merchant_id"], payment_method=pm, customer=customer)
        assert resolved.live_customer is None and resolved.card is not None
        r = await api.post("/v1/payment_intents", headers=h, data={
            "amount": "500", "currency": "usd", "payment_method": pm, "customer": customer,
            "confirm": "true"})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == "customer"
        assert r.json()["error"]["code"] == "resource_missing"
    r = await api.post("/v1/payment_intents", headers=h, data={
        "amount": "500", "currency": "usd", "payment_method": pm, "customer": later})
    assert r.status_code == 200, r.text
    pi = r.json()["id"]
    assert (await api.delete(f"/v1/customers/{later}", headers=h)).status_code == 200
    r = await api.post(f"/v1/payment_intents/{pi}/confirm", headers=h)
    assert r.status_code == 400 and r.json()["error"]["param"] == "customer", r.text
    # refused before the first commit: the card was claimed by none of them
    r = await api.post("/v1/payment_intents", headers=h, data={
        "amount": "500", "currency": "usd", "payment_method": pm, "customer": live,
        "confirm": "true"})
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
