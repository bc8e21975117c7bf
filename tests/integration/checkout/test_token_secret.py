"""The hosted checkout's tokens are signed with KASSA_CHECKOUT_TOKEN_SECRET and nothing
else: a token signed with another secret (the forward secret included) is refused by the
vault, and while the secret rotates a token signed with the previous one still pays."""

from __future__ import annotations

import re
import secrets

import httpx
import orjson
from pydantic import SecretStr

from kassa.api.app import create_app
from kassa.checkout import tokens
from tests.support.vault import CHECKOUT_TOKEN_SECRET, FORWARD_TOKEN, kassa_through, running_vault

CARD = {"type": "card", "card[number]": "4242424242424242", "card[exp_month]": "12",
        "card[exp_year]": "2034", "card[cvc]": "123"}


def _page_token(text: str) -> str:
    raw = re.search(r'<script type="application/json" id="kassa-config">(.*?)</script>',
                    text).group(1)
    return orjson.loads(raw)["token"]


async def test_rotation_accepts_the_previous_secret_for_verification_only(settings, dsn, shop,
                                                                           sim):
    new = secrets.token_hex(32)
    async with running_vault(settings, dsn, checkout_token_secret=SecretStr(new),
                             checkout_token_secret_previous=SecretStr(
                                 CHECKOUT_TOKEN_SECRET)) as vault, \
            kassa_through(vault, dsn) as k:
        app = create_app(kassa=k, key_cache_seconds=0.0)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://kassa.test") as api, \
                httpx.AsyncClient(base_url=vault.url) as v:
            sk = {"Authorization": f"Bearer {shop['secret_key']}"}
            pi = (await api.post("/v1/payment_intents", headers=sk,
                                 data={"amount": "700", "currency": "eur"})).json()
            page = await api.get(f"/checkout/{pi['id']}",
                                 params={"client_secret": pi["client_secret"]})
            minted = _page_token(page.text)
            now = k.clock()
            # the API signs with the new secret only
            assert tokens.merchant_of(tokens.verifying_keys([new]), minted, now=now) \
                == shop["merchant_id"]
            assert tokens.merchant_of(tokens.verifying_keys([CHECKOUT_TOKEN_SECRET]), minted,
                                      now=now) is None

            def under(secret: str) -> str:
                return tokens.mint(tokens.signing_key(secret), merchant_id=shop["merchant_id"],
                                   payment_id=pi["id"], now=now)

            async def tokenise(token: str) -> httpx.Response:
                return await v.post("/v1/payment_methods", data=CARD,
                                    headers={"Authorization": f"Bearer {token}"})

            # a page opened before the rotation (token under the previous secret) still pays
            old_page = await tokenise(under(CHECKOUT_TOKEN_SECRET))
            assert old_page.status_code == 200, old_page.text
            assert (await tokenise(minted)).status_code == 200
            for other in (secrets.token_hex(32), FORWARD_TOKEN):
                r = await tokenise(under(other))
                assert r.status_code == 401, r.text
                assert r.json()["error"]["type"] == "invalid_request_error"
            r = await api.post(f"/checkout/{pi['id']}/confirm", json={
                "client_secret": pi["client_secret"], "payment_method": old_page.json()["id"]})
            assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text


async def test_after_the_rotation_the_previous_secret_is_refused(settings, dsn, shop):
    async with running_vault(settings, dsn,
                             checkout_token_secret=SecretStr(secrets.token_hex(32))) as vault:
        token = tokens.mint(tokens.signing_key(CHECKOUT_TOKEN_SECRET),
                            merchant_id=shop["merchant_id"], payment_id="pi_x",
                            now=2_000_000_000 - 60)
        async with httpx.AsyncClient(base_url=vault.url) as v:
            r = await v.post("/v1/payment_methods", data=CARD,
                             headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, r.text
