"""The hosted checkout page over HTTP: served only for the intent's client_secret, with a
Content-Security-Policy and integrity hashes that match the bytes served; its token lets
the vault tokenise for that merchant only, and the page's confirm pays once."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx

from kassa.checkout import tokens
from tests.support.vault import CHECKOUT_TOKEN_SECRET, FORWARD_TOKEN


def _auth(shop):
    return {"Authorization": f"Bearer {shop['secret_key']}"}


async def _intent(api, shop, **data):
    r = await api.post("/v1/payment_intents", headers=_auth(shop),
                       data={"amount": "4200", "currency": "eur"} | data)
    assert r.status_code == 200, r.text
    return r.json()


def _config(text: str) -> dict:
    import json

    raw = re.search(r'<script type="application/json" id="kassa-config">(.*?)</script>',
                    text).group(1)
    return json.loads(raw)


async def test_the_page_and_its_policy(api, vault, shop):
    pi = await _intent(api, shop, description="Order <7>")
    r = await api.get(f"/checkout/{pi['id']}", params={"client_secret": pi["client_secret"]})
    assert r.status_code == 200, r.text
    assert "42.00 EUR" in r.text and "Order &lt;7&gt;" in r.text and "Vault shop" in r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert f"connect-src 'self' {vault.url}" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["cache-control"] == "no-store"
    # every script and stylesheet is kassa's own, and its integrity hash is its bytes'
    refs = re.findall(r'(?:src|href)="([^"]+)" integrity="(sha384-[^"]+)"', r.text)
    assert {u.rsplit("/", 1)[1] for u, _ in refs} == {"kassa.js", "checkout.js",
                                                       "checkout.css"}
    assert "<script>" not in r.text and "http" not in "".join(u for u, _ in refs)
    for url, integrity in refs:
        served = await api.get(url)
        assert served.status_code == 200
        digest = base64.b64encode(hashlib.sha384(served.content).digest()).decode()
        assert integrity == f"sha384-{digest}"
    config = _config(r.text)
    assert config["vault_url"] == vault.url and config["token"].startswith("kct_")
    assert pi["client_secret"] not in config["token"]


async def test_a_wrong_secret_or_intent_is_one_404(api, shop):
    pi = await _intent(api, shop)
    for path, secret in ((pi["id"], pi["id"] + "_secret_wrong"), (pi["id"], None),
                         ("pi_unknown", pi["client_secret"]), ("x" * 300, "y")):
        params = {} if secret is None else {"client_secret": secret}
        r = await api.get(f"/checkout/{path}", params=params)
        assert r.status_code == 404, (path, r.text)
        assert "This checkout link is not valid." in r.text
    r = await api.get(f"/checkout/{pi['id']}", params={
        "client_secret": pi["client_secret"], "return_url": "javascript:alert(1)"})
    assert r.status_code == 400


async def test_the_token_tokenises_for_its_merchant_only(api, vault, shop):
    pi = await _intent(api, shop)
    page = await api.get(f"/checkout/{pi['id']}", params={"client_secret": pi["client_secret"]})
    token = _config(page.text)["token"]
    card = {"type": "card", "card[number]": "4242424242424242", "card[exp_month]": "12",
            "card[exp_year]": "2034", "card[cvc]": "123"}
    async with httpx.AsyncClient(base_url=vault.url) as c:
        r = await c.post("/v1/payment_methods", data=card,
                         headers={"Authorization": f"Bearer {token}",
                                  "Origin": "http://shop.example"})
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == "*"
        pm = r.json()["id"]
        got = await api.get(f"/v1/payment_methods/{pm}", headers=_auth(shop))
        assert got.status_code == 200  # the merchant's card
        key = tokens.signing_key(CHECKOUT_TOKEN_SECRET)
        forged = token[:-1] + ("0" if token[-1] != "0" else "1")
        expired = tokens.mint(key, merchant_id=shop["merchant_id"], payment_id=pi["id"],
                              now=0)
        other = tokens.mint(tokens.signing_key("another secret"),
                            merchant_id=shop["merchant_id"], payment_id=pi["id"],
                            now=2_000_000_000)
        # signed as checkout tokens were before they had a secret of their own: refused
        forward_keyed = tokens.mint(tokens.signing_key(FORWARD_TOKEN),
                                    merchant_id=shop["merchant_id"], payment_id=pi["id"],
                                    now=2_000_000_000)
        for bad in (forged, expired, other, forward_keyed, "kct_garbage"):
            r = await c.post("/v1/payment_methods", data=card,
                             headers={"Authorization": f"Bearer {bad}"})
            assert r.status_code == 401, (bad, r.text)
            assert r.json()["error"]["type"] == "invalid_request_error" or \
                r.json()["error"]["type"] == "authentication_error"
        # a checkout token reads nothing at the vault
        r = await c.get(f"/v1/payment_methods/{pm}", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401


async def test_the_pages_confirm_pays_once_and_shows_the_outcome(api, vault, shop, sim):
    pi = await _intent(api, shop)
    page = await api.get(f"/checkout/{pi['id']}", params={"client_secret": pi["client_secret"]})
    config = _config(page.text)
    async with httpx.AsyncClient(base_url=vault.url) as c:
        pm = (await c.post("/v1/payment_methods", headers={
            "Authorization": f"Bearer {config['token']}"}, data={
            "type": "card", "card[number]": "4242424242424242", "card[exp_month]": "12",
            "card[exp_year]": "2034", "card[cvc]": "123"})).json()["id"]
    r = await api.post(config["confirm_url"], json={"client_secret": "wrong",
                                                    "payment_method": pm})
    assert r.status_code == 404
    body = {"client_secret": pi["client_secret"], "payment_method": pm}
    key = {"Idempotency-Key": "page-click-1"}
    first = await api.post(config["confirm_url"], json=body, headers=key)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "succeeded" and "metadata" not in first.json()
    replay = await api.post(config["confirm_url"], json=body, headers=key)
    assert replay.json() == first.json()
    again = await api.post(config["confirm_url"], json=body)
    assert again.status_code == 400  # succeeded already: nothing more is charged
    books = [a for a in (await sim.get("/_sim/authorizations")).json()
             if a["merchant_id"] == shop["merchant_id"]]
    assert [a["amount_captured"] for a in books] == [4200]
    page = await api.get(f"/checkout/{pi['id']}", params={"client_secret": pi["client_secret"]})
    assert "Payment complete" in page.text and 'id="payment-form"' not in page.text


async def test_a_decline_is_a_402_with_the_reduced_intent(api, vault, shop):
    pi = await _intent(api, shop)
    page = await api.get(f"/checkout/{pi['id']}", params={"client_secret": pi["client_secret"]})
    config = _config(page.text)
    async with httpx.AsyncClient(base_url=vault.url) as c:
        pm = (await c.post("/v1/payment_methods", headers={
            "Authorization": f"Bearer {config['token']}"}, data={
            "type": "card", "card[number]": "4000000000000002", "card[exp_month]": "12",
            "card[exp_year]": "2034", "card[cvc]": "123"})).json()["id"]
    r = await api.post(config["confirm_url"], json={"client_secret": pi["client_secret"],
                                                    "payment_method": pm})
    assert r.status_code == 402, r.text
    assert r.json()["error"]["code"] == "card_declined"
    assert r.json()["error"]["payment_intent"]["status"] == "requires_payment_method"
    assert "metadata" not in r.json()["error"]["payment_intent"]


async def test_two_confirms_racing_from_the_page_charge_once(api, vault, shop, sim):
    import asyncio

    pi = await _intent(api, shop, amount="3300")
    page = await api.get(f"/checkout/{pi['id']}", params={"client_secret": pi["client_secret"]})
    config = _config(page.text)
    async with httpx.AsyncClient(base_url=vault.url) as c:
        pm = (await c.post("/v1/payment_methods", headers={
            "Authorization": f"Bearer {config['token']}"}, data={
            "type": "card", "card[number]": "4242424242424242", "card[exp_month]": "12",
            "card[exp_year]": "2034", "card[cvc]": "123"})).json()["id"]
    body = {"client_secret": pi["client_secret"], "payment_method": pm}
    answers = await asyncio.gather(*(
        api.post(config["confirm_url"], json=body, headers={"Idempotency-Key": f"click-{i}"})
        for i in range(4)))
    assert sorted(r.status_code for r in answers).count(200) >= 1
    assert all(r.status_code in (200, 400, 409) for r in answers), [r.text for r in answers]
    books = [a for a in (await sim.get("/_sim/authorizations")).json()
             if a["merchant_id"] == shop["merchant_id"]]
    assert [a["amount_captured"] for a in books] == [3300]
    captured = await api.kassa.pool.fetchval(
        "SELECT sum(e.amount) FROM ledger_entries e JOIN ledger_transactions t"
        " ON t.id = e.transaction_id WHERE t.kind = 'capture' AND t.merchant_id = $1"
        " AND e.account LIKE 'psp:%:receivable'", shop["merchant_id"])
    assert captured == 3300
