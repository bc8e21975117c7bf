"""A checkout token is minted only while its intent can still take a card, and lives 30
minutes: a link to a paid or canceled intent (in a mail, a browser history) gives nobody a
way to tokenise cards for the merchant."""

from __future__ import annotations

import json
import re

import httpx

from kassa.checkout import tokens
from tests.support.vault import CHECKOUT_TOKEN_SECRET

CARD = {"type": "card", "card[number]": "4242424242424242", "card[exp_month]": "12",
        "card[exp_year]": "2034", "card[cvc]": "123"}


def _auth(shop):
    return {"Authorization": f"Bearer {shop['secret_key']}"}


def _config(text: str) -> dict:
    raw = re.search(r'<script type="application/json" id="kassa-config">(.*?)</script>',
                    text).group(1)
    return json.loads(raw)


async def _page(api, pi):
    r = await api.get(f"/checkout/{pi['id']}", params={"client_secret": pi["client_secret"]})
    assert r.status_code == 200, r.text
    return r


async def test_no_token_for_a_canceled_or_paid_intent(api, vault, shop):
    h = _auth(shop)
    pi = (await api.post("/v1/payment_intents", headers=h,
                         data={"amount": "500", "currency": "usd"})).json()
    config = _config((await _page(api, pi)).text)
    assert config["token"].startswith("kct_")
    async with httpx.AsyncClient(base_url=vault.url) as c:
        r = await c.post("/v1/payment_methods", data=CARD,
                         headers={"Authorization": f"Bearer {config['token']}"})
        assert r.status_code == 200, r.text
        pm = r.json()["id"]
    r = await api.post(f"/v1/payment_intents/{pi['id']}/confirm", headers=h,
                       data={"payment_method": pm})
    assert r.json()["status"] == "succeeded", r.text
    paid = await _page(api, pi)
    assert _config(paid.text)["token"] is None and "kct_" not in paid.text

    other = (await api.post("/v1/payment_intents", headers=h,
                            data={"amount": "500", "currency": "usd"})).json()
    r = await api.post(f"/v1/payment_intents/{other['id']}/cancel", headers=h)
    assert r.json()["status"] == "canceled"
    canceled = await _page(api, other)
    assert _config(canceled.text)["token"] is None and "kct_" not in canceled.text
    assert "This payment was canceled." in canceled.text


async def test_a_token_lives_thirty_minutes(api, vault, shop):
    pi = (await api.post("/v1/payment_intents", headers=_auth(shop),
                         data={"amount": "500", "currency": "usd"})).json()
    token = _config((await _page(api, pi)).text)["token"]
    expires = int(token.split(".")[-2])
    now = api.kassa.clock()
    assert now + 1790 <= expires <= now + 1800
    keys = tokens.verifying_keys([CHECKOUT_TOKEN_SECRET])
    assert tokens.merchant_of(keys, token, now=expires - 1) == shop["merchant_id"]
    assert tokens.merchant_of(keys, token, now=expires) is None
