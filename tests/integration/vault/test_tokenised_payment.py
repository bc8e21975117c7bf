"""A card tokenised at the vault pays through the simulator: the API builds the PSP call
with placeholders, the vault's forwarding endpoint fills in the card number."""

from __future__ import annotations

from tests.support.vault import tokenise


async def test_a_vault_card_pays_through_the_simulator(vault, api, shop, sim):
    r = await tokenise(vault.url, shop["publishable_key"], "4242424242424242")
    assert r.status_code == 200, r.text
    pm = r.json()
    assert pm["id"].startswith("pm_") and pm["object"] == "payment_method"
    assert pm["card"]["last4"] == "4242" and pm["card"]["brand"] == "visa"
    assert pm["card"]["funding"] == "credit" and pm["card"]["country"] == "US"
    assert pm["card"]["checks"]["cvc_check"] == "unchecked"
    assert "4242424242424242" not in r.text
    auth = {"Authorization": f"Bearer {shop['secret_key']}"}
    r = await api.get(f"/v1/payment_methods/{pm['id']}", headers=auth)
    assert r.status_code == 200, r.text
    assert r.json() == pm
    r = await api.post("/v1/payment_intents", headers=auth, data={
        "amount": "2000", "currency": "usd", "payment_method": pm["id"], "confirm": "true"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "succeeded"


async def test_the_simulator_gets_the_real_number(vault, api, shop):
    r = await tokenise(vault.url, shop["publishable_key"], "4000000000009995")
    auth = {"Authorization": f"Bearer {shop['secret_key']}"}
    r = await api.post("/v1/payment_intents", headers=auth, data={
        "amount": "2000", "currency": "usd", "payment_method": r.json()["id"],
        "confirm": "true"})
    assert r.status_code == 402, r.text
    assert r.json()["error"]["decline_code"] == "insufficient_funds"


async def test_the_payment_method_has_stripes_shape(vault, shop):
    from tests.support.stripe_schema import assert_stripe_shape

    r = await tokenise(vault.url, shop["publishable_key"], "5555555555554444")
    assert_stripe_shape(r.json(), "PaymentMethod")
    assert r.json()["billing_details"]["name"] == "Jenny Rosen"
    assert r.json()["customer"] is None and r.json()["livemode"] is False
