"""What a web page may ask of kassa, over HTTP: CORS headers and preflight answers on the
routes a page calls with a publishable key (retrieve and confirm with a client_secret, the
checkout page's, the vault's payment_methods) and on no secret-key route; a secret or
restricted key sent with another site's Origin is refused with nothing done."""

from __future__ import annotations

import httpx
import pytest

from kassa.api.app import create_app
from tests.support.api_server import serving

SHOP = "https://shop.example"
PREFLIGHT_HEADERS = "authorization,content-type,idempotency-key"


@pytest.fixture
async def api_url(api):
    async with serving(create_app(kassa=api.kassa, key_cache_seconds=0.0)) as url:
        yield url


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _preflight(c: httpx.AsyncClient, path: str, method: str) -> httpx.Response:
    return await c.options(path, headers={"Origin": SHOP,
                                          "Access-Control-Request-Method": method,
                                          "Access-Control-Request-Headers": PREFLIGHT_HEADERS})


async def _intent(c: httpx.AsyncClient, shop, **data) -> dict:
    r = await c.post("/v1/payment_intents", headers=_auth(shop["secret_key"]),
                     data={"amount": "1500", "currency": "eur"} | data)
    assert r.status_code == 200, r.text
    return r.json()


async def _intent_count(c: httpx.AsyncClient, shop) -> int:
    r = await c.get("/v1/payment_intents", headers=_auth(shop["secret_key"]),
                    params={"limit": "100"})
    assert r.status_code == 200, r.text
    return len(r.json()["data"])


async def test_preflights_are_answered_on_browser_routes_only(api_url, vault, shop):
    async with httpx.AsyncClient(base_url=api_url) as c:
        pi = await _intent(c, shop)
        for path, method in ((f"/v1/payment_intents/{pi['id']}/confirm", "POST"),
                             (f"/v1/payment_intents/{pi['id']}", "GET"),
                             (f"/checkout/{pi['id']}/confirm", "POST")):
            r = await _preflight(c, path, method)
            assert r.status_code == 200, (path, r.text)
            assert r.headers["access-control-allow-origin"] == "*"
            assert method in r.headers["access-control-allow-methods"]
            assert "authorization" in r.headers["access-control-allow-headers"].lower()
        # secret-key routes, and a browser route asked for another method: no CORS at all
        for path, method in (("/v1/payment_intents", "POST"), ("/v1/payment_intents", "GET"),
                             ("/v1/payment_intents/search", "GET"),
                             (f"/v1/payment_intents/{pi['id']}", "POST"),
                             (f"/v1/payment_intents/{pi['id']}/capture", "POST"),
                             (f"/v1/payment_intents/{pi['id']}/confirm", "GET"),
                             ("/v1/refunds", "POST"), ("/v1/customers", "POST"),
                             ("/v1/webhook_endpoints", "POST"), ("/v1/balance", "GET")):
            r = await _preflight(c, path, method)
            assert r.status_code >= 400, (path, method, r.status_code)
            assert "access-control-allow-origin" not in r.headers, (path, method)
        # and an ordinary answer on a secret-key route carries none either
        r = await c.get("/v1/balance", headers={**_auth(shop["secret_key"])})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    async with httpx.AsyncClient(base_url=vault.url) as c:
        r = await _preflight(c, "/v1/payment_methods", "POST")
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
        for path, method in (("/v1/payment_methods/pm_x", "GET"), ("/v1/forward", "POST")):
            r = await _preflight(c, path, method)
            assert "access-control-allow-origin" not in r.headers, path


async def test_a_publishable_key_from_a_page_works_with_cors(api_url, shop):
    async with httpx.AsyncClient(base_url=api_url) as c:
        pi = await _intent(c, shop)
        r = await c.get(f"/v1/payment_intents/{pi['id']}",
                        params={"client_secret": pi["client_secret"]},
                        headers={**_auth(shop["publishable_key"]), "Origin": SHOP})
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == "*"
        assert "request-id" in r.headers["access-control-expose-headers"].lower()


@pytest.mark.parametrize("kind", ["sk", "rk"])
async def test_a_secret_or_restricted_key_from_another_site_is_refused_with_nothing_done(
        api_url, vault, shop, dsn, kind):
    import asyncpg

    key = shop["secret_key"] if kind == "sk" else "rk_test_" + shop["secret_key"][8:]
    async with httpx.AsyncClient(base_url=api_url) as c:
        pi = await _intent(c, shop, payment_method="pm_card_visa")
        before = await _intent_count(c, shop)
        refused = [
            await c.post("/v1/payment_intents", headers={**_auth(key), "Origin": SHOP},
                         data={"amount": "999", "currency": "eur"}),
            await c.post(f"/v1/payment_intents/{pi['id']}/confirm",
                         headers={**_auth(key), "Origin": SHOP}),
            await c.post(f"/v1/payment_intents/{pi['id']}/cancel",
                         headers={**_auth(key), "Origin": "null"}),  # a sandboxed frame
            await c.get("/v1/balance", auth=(key, ""), headers={"Origin": SHOP}),  # Basic
        ]
        for r in refused:
            assert r.status_code == 403, r.text
            error = r.json()["error"]
            assert error["type"] == "invalid_request_error"
            assert error["code"] == "secret_key_from_browser"
            assert "must not be used in a browser" in error["message"]
            assert "publishable key" in error["message"]
            assert "request-id" in r.headers
        # on a browser route the page can read why; elsewhere the browser shows nothing
        assert refused[1].headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-origin" not in refused[0].headers
        assert await _intent_count(c, shop) == before  # nothing created
        r = await c.get(f"/v1/payment_intents/{pi['id']}", headers=_auth(shop["secret_key"]))
        assert r.json()["status"] == "requires_confirmation"  # neither confirmed nor canceled
    conn = await asyncpg.connect(dsn)
    try:
        count = "SELECT count(*) FROM kassa_vault.payment_methods WHERE merchant_id = $1"
        cards = await conn.fetchval(count, shop["merchant_id"])
        async with httpx.AsyncClient(base_url=vault.url) as c:
            r = await c.post("/v1/payment_methods", headers={**_auth(key), "Origin": SHOP},
                             data={"type": "card", "card[number]": "4242424242424242",
                                   "card[exp_month]": "12", "card[exp_year]": "2034"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "secret_key_from_browser"
        assert r.headers["access-control-allow-origin"] == "*"
        assert "4242424242424242" not in r.text
        assert await conn.fetchval(count, shop["merchant_id"]) == cards  # nothing stored
    finally:
        await conn.close()


async def test_a_secret_key_from_a_server_or_kassas_own_origin_is_fine(api_url, vault, shop):
    async with httpx.AsyncClient(base_url=api_url) as c:
        assert (await c.get("/v1/balance", headers=_auth(shop["secret_key"]))).status_code == 200
        # kassa's own pages (the API docs' "Try it out") send their own origin
        r = await c.get("/v1/balance", headers={**_auth(shop["secret_key"]), "Origin": api_url})
        assert r.status_code == 200, r.text
    async with httpx.AsyncClient(base_url=vault.url) as c:
        r = await c.post("/v1/payment_methods", headers=_auth(shop["secret_key"]),
                         data={"type": "card", "card[number]": "4242424242424242",
                               "card[exp_month]": "12", "card[exp_year]": "2034"})
        assert r.status_code == 200, r.text
