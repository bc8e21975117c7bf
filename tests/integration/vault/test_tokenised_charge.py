"""A charge of a card the vault tokenised shows the card as the vault describes it (the
number the API resolves is a placeholder), and its payment_method expands to the vault's."""

from __future__ import annotations

from tests.support.stripe_schema import assert_stripe_shape
from tests.support.vault import tokenise


async def test_a_vault_cards_charge_shows_the_vaults_card(vault, api, shop):
    pm = (await tokenise(vault.url, shop["publishable_key"], "5555555555554444")).json()
    auth = {"Authorization": f"Bearer {shop['secret_key']}"}
    r = await api.post("/v1/payment_intents", headers=auth, data={
        "amount": "1800", "currency": "usd", "payment_method": pm["id"], "confirm": "true",
        "expand[]": "payment_method"})
    assert r.status_code == 200, r.text
    assert r.json()["payment_method"] == pm
    charge = (await api.get(f"/v1/charges/{r.json()['latest_charge']}", headers=auth)).json()
    assert_stripe_shape(charge, "Charge")
    card = charge["payment_method_details"]["card"]
    assert (card["brand"], card["last4"], card["exp_month"], card["exp_year"],
            card["funding"], card["country"]) == (
        pm["card"]["brand"], "4444", pm["card"]["exp_month"], pm["card"]["exp_year"],
        pm["card"]["funding"], pm["card"]["country"])
    assert charge["payment_method"] == pm["id"] and charge["status"] == "succeeded"
