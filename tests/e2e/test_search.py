"""GET /v1/payment_intents/search: Stripe's query language over HTTP and through stripe-python
(``search`` and ``search_auto_paging_iter``), merchant-scoped, paged without gaps."""

from __future__ import annotations

import pytest
import stripe

from kassa.api.app import create_app
from tests.support.api_server import serving

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


async def make(client, auth, **params) -> dict:
    data = {"amount": "1000", "currency": "usd", **params}
    r = await client.post("/v1/payment_intents", headers=auth, data=data)
    assert r.status_code == 200, r.text
    return r.json()


async def ids(client, auth, query: str, **params) -> list[str]:
    r = await client.get("/v1/payment_intents/search", headers=auth,
                         params={"query": query, **params})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "search_result" and body["url"] == "/v1/payment_intents/search"
    return [p["id"] for p in body["data"]]


async def test_fields_operators_and_conjunctions(client, auth, merchant, kassa):
    from kassa.services import merchants

    small = await make(client, auth, amount="500", **{"metadata[order]": "A-1"})
    eur = await make(client, auth, currency="eur", **{"metadata[order]": "B-2"})
    paid = await make(client, auth, amount="2500", payment_method="pm_card_visa",
                      confirm="true")
    # another merchant's payment never matches
    other = await merchants.create_merchant(kassa, name="Other")
    await make(client, {"Authorization": f"Bearer {other['secret_key']}"}, amount="500")

    assert await ids(client, auth, "status:'succeeded'") == [paid["id"]]
    assert await ids(client, auth, "amount<1000") == [small["id"]]
    assert await ids(client, auth, "amount>=1000 AND currency:'usd'") == [paid["id"]]
    assert await ids(client, auth, "currency:'EUR'") == [eur["id"]]
    assert await ids(client, auth, "-currency:'usd'") == [eur["id"]]
    assert await ids(client, auth, "metadata['order']:'A-1' OR metadata['order']:'B-2'") == [
        eur["id"], small["id"]]
    assert await ids(client, auth, "metadata['order']:null") == [paid["id"]]
    assert await ids(client, auth, f"created>={small['created']} amount:2500") == [paid["id"]]


async def test_pages_follow_each_other_without_gaps(client, auth):
    made = [(await make(client, auth, **{"metadata[batch]": "p"}))["id"] for _ in range(5)]
    seen: list[str] = []
    page = None
    while True:
        params = {"query": "metadata['batch']:'p'", "limit": "2"}
        if page:
            params["page"] = page
        body = (await client.get("/v1/payment_intents/search", headers=auth,
                                 params=params)).json()
        seen += [p["id"] for p in body["data"]]
        assert body["has_more"] == (body["next_page"] is not None)
        page = body["next_page"]
        if page is None:
            break
    assert seen == list(reversed(made))


@pytest.mark.parametrize("params, param", [
    ({"query": "colour:'red'"}, "query"),
    ({"query": "status:'a' AND amount:1 OR amount:2"}, "query"),
    ({"query": "amount>'x'"}, "query"),
    ({"query": "status:'succeeded'", "page": "not-a-page"}, "page"),
    ({}, "query"),
])
async def test_a_query_kassa_cannot_apply_is_a_400(client, auth, params, param):
    r = await client.get("/v1/payment_intents/search", headers=auth, params=params)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == param


async def test_search_needs_a_secret_key(client):
    r = await client.get("/v1/payment_intents/search", params={"query": "amount>1"})
    assert r.status_code == 401


async def test_stripe_python_search_and_auto_paging(kassa, merchant, client, auth):
    made = [(await make(client, auth, **{"metadata[sdk]": "yes"}))["id"] for _ in range(3)]
    async with serving(create_app(kassa=kassa, key_cache_seconds=0.0)) as url:
        http = stripe.HTTPXClient()
        sdk = stripe.StripeClient(merchant["secret_key"], http_client=http,
                                  base_addresses={"api": url})
        try:
            first = await sdk.v1.payment_intents.search_async(
                params={"query": "metadata['sdk']:'yes'", "limit": 2})
            assert [p.id for p in first.data] == made[:0:-1] and first.has_more
            every = [p.id async for p in first.auto_paging_iter()]
            assert every == list(reversed(made))
        finally:
            await http.close_async()


async def test_search_expands_like_a_list(client, auth):
    paid = await make(client, auth, payment_method="pm_card_visa", confirm="true",
                      **{"metadata[x]": "exp"})
    r = await client.get("/v1/payment_intents/search", headers=auth, params={
        "query": "metadata['x']:'exp'", "expand[]": "data.latest_charge"})
    assert r.status_code == 200, r.text
    charge = r.json()["data"][0]["latest_charge"]
    assert charge["object"] == "charge" and charge["id"] == paid["latest_charge"]
    r = await client.get("/v1/payment_intents/search", headers=auth, params={
        "query": "metadata['x']:'exp'", "expand[]": "latest_charge"})
    assert r.status_code == 400 and "data.latest_charge" in r.json()["error"]["message"]
