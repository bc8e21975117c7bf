"""Every list applies each filter it takes (created ranges, source, type, currency, charge,
types[]) and refuses one it cannot apply with a 400 — never an unfiltered 200."""

from __future__ import annotations

import time

import pytest

LISTS = ["/v1/payment_intents", "/v1/refunds", "/v1/events", "/v1/balance_transactions",
         "/v1/disputes", "/v1/webhook_endpoints"]


async def paid(client, auth, amount: int = 1000) -> dict:
    r = await client.post("/v1/payment_intents", headers=auth, data={
        "amount": str(amount), "currency": "usd", "payment_method": "pm_card_visa",
        "confirm": "true"})
    assert r.status_code == 200, r.text
    return r.json()


async def ids(client, auth, url: str, **params) -> list[str]:
    r = await client.get(url, headers=auth, params=params)
    assert r.status_code == 200, r.text
    return [o["id"] for o in r.json()["data"]]


@pytest.mark.parametrize("url", LISTS)
async def test_an_unknown_filter_is_a_400_not_ignored(client, auth, url):
    r = await client.get(url, headers=auth, params={"colour": "red"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "parameter_unknown"
    assert r.json()["error"]["param"] == "colour"
    r = await client.get(url, headers=auth, params={"created[around]": "5"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "created"
    r = await client.get(url, headers=auth, params={"created[gt]": "soon"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "created"


@pytest.mark.parametrize("url", LISTS)
async def test_every_list_takes_created_ranges(client, auth, url):
    await client.post("/v1/webhook_endpoints", headers=auth, data={
        "url": "https://example.com/hook", "enabled_events[]": "*"})
    await paid(client, auth)
    future = str(int(time.time()) + 3600)
    assert await ids(client, auth, url, **{"created[gt]": future}) == []
    before = await ids(client, auth, url, **{"created[lt]": future})
    assert before == await ids(client, auth, url)  # everything was created before


async def test_created_bounds_pick_exactly_the_range(client, auth, kassa):
    old, new = await paid(client, auth), await paid(client, auth)
    t = new["created"]
    await kassa.pool.execute("UPDATE payment_intents SET created = $2 WHERE id = $1",
                             old["id"], t - 100)
    url = "/v1/payment_intents"
    assert await ids(client, auth, url, **{"created[lt]": str(t - 50)}) == [old["id"]]
    assert await ids(client, auth, url, **{"created[gte]": str(t - 50)}) == [new["id"]]
    assert await ids(client, auth, url, **{"created[gte]": str(t - 100),
                                           "created[lte]": str(t - 100)}) == [old["id"]]
    assert await ids(client, auth, url, created=str(t - 100)) == [old["id"]]
    assert await ids(client, auth, url, **{"created[gt]": str(t - 100),
                                           "created[lt]": str(t + 1)}) == [new["id"]]


async def test_balance_transactions_by_source_type_and_currency(client, auth):
    first, second = await paid(client, auth, 1000), await paid(client, auth, 2000)
    r = await client.post("/v1/refunds", headers=auth, data={"payment_intent": second["id"],
                                                             "amount": "300"})
    assert r.status_code == 200, r.text
    refund = r.json()
    bts = (await client.get("/v1/balance_transactions", headers=auth)).json()["data"]
    by_source = {b["source"]: b for b in bts}
    charge_bt = by_source[first["latest_charge"]]
    url = "/v1/balance_transactions"
    assert await ids(client, auth, url, source=first["latest_charge"]) == [charge_bt["id"]]
    assert await ids(client, auth, url, type="refund") == [by_source[refund["id"]]["id"]]
    assert len(await ids(client, auth, url, type="charge")) == 2
    assert len(await ids(client, auth, url, currency="USD")) == 3
    assert await ids(client, auth, url, currency="eur") == []
    r = await client.get(url, headers=auth, params={"payout": "po_123"})
    assert r.status_code == 404 and r.json()["error"]["param"] == "payout"


async def test_refunds_by_charge_and_events_by_types(client, auth):
    a, b = await paid(client, auth), await paid(client, auth)
    ra = (await client.post("/v1/refunds", headers=auth,
                            data={"payment_intent": a["id"], "amount": "100"})).json()
    await client.post("/v1/refunds", headers=auth, data={"payment_intent": b["id"],
                                                         "amount": "100"})
    assert await ids(client, auth, "/v1/refunds", charge=a["latest_charge"]) == [ra["id"]]
    assert await ids(client, auth, "/v1/refunds", charge="ch_nope") == []
    r = await client.get("/v1/events", headers=auth, params=[
        ("types[]", "payment_intent.created"), ("types[]", "charge.refunded")])
    assert r.status_code == 200, r.text
    kinds = {e["type"] for e in r.json()["data"]}
    assert kinds and kinds <= {"payment_intent.created", "charge.refunded"}
    assert "payment_intent.created" in kinds
    r = await client.get("/v1/events", headers=auth, params={
        "type": "charge.refunded", "types[0]": "payment_intent.created"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "types"

