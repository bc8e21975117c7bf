"""A card tokenised at the vault pays through the simulator: the API builds the PSP call
with placeholders, the vault's forwarding endpoint fills in the card number."""

from __future__ import annotations

import httpx
import pytest

from kassa.api.app import create_app
from kassa.services import merchants
from tests.support.vault import kassa_through, running_vault


@pytest.fixture
async def vault(settings, dsn):
    async with running_vault(settings, dsn) as running:
        yield running


@pytest.fixture
async def api(vault, dsn):
    async with kassa_through(vault, dsn) as k:
        app = create_app(kassa=k, key_cache_seconds=0.0)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://kassa.test") as c:
            c.kassa = k  # type: ignore[attr-defined]
            yield c


@pytest.fixture
async def shop(api):
    return await merchants.create_merchant(api.kassa, name="Vault shop")


async def tokenise(vault_url: str, key: str, number: str, **card: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=vault_url) as c:
        return await c.post("/v1/payment_methods", auth=(key, ""), data={
            "type": "card", "card[number]": number, "card[exp_month]": card.get("month", "12"),
            "card[exp_year]": card.get("year", "2034"), "card[cvc]": card.get("cvc", "123"),
            "billing_details[name]": "Jenny Rosen"})


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
