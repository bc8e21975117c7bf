"""An unknown starting_after/ending_before is a 400 resource_missing, as at Stripe, on every
list; a real cursor pages as before."""

from __future__ import annotations

import pytest

from kassa.services import merchants

PAY = {"amount": "1000", "currency": "usd"}


async def _intent(client, auth) -> str:
    r = await client.post("/v1/payment_intents", headers=auth, data=PAY)
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


@pytest.mark.parametrize(("path", "cursor", "object_name"), [
    ("/v1/payment_intents", "pi_nope", "payment_intent"),
    ("/v1/refunds", "re_nope", "refund"),
    ("/v1/events", "evt_nope", "event"),
    ("/v1/balance_transactions", "txn_nope", "balance_transaction"),
    ("/v1/disputes", "dp_nope", "dispute"),
    ("/v1/webhook_endpoints", "we_nope", "webhook_endpoint"),
    ("/v1/payouts", "po_nope", "payout"),
])
@pytest.mark.parametrize("name", ["starting_after", "ending_before"])
async def test_an_unknown_cursor_is_resource_missing(client, auth, path, cursor, object_name,
                                                     name):
    r = await client.get(path, headers=auth, params={name: cursor})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert (err["type"], err["code"], err["param"]) == (
        "invalid_request_error", "resource_missing", name)
    assert err["message"] == f"No such {object_name}: '{cursor}'"
    assert err["doc_url"] == "https://stripe.com/docs/error-codes/resource-missing"


async def test_another_merchants_object_is_no_cursor(client, auth, kassa):
    other = await merchants.create_merchant(kassa, name="Other")
    theirs = await _intent(client, {"Authorization": f"Bearer {other['secret_key']}"})
    r = await client.get("/v1/payment_intents", headers=auth,
                         params={"starting_after": theirs})
    assert r.status_code == 400 and r.json()["error"]["code"] == "resource_missing"


async def test_a_known_cursor_pages(client, auth):
    ids = [await _intent(client, auth) for _ in range(3)]
    r = await client.get("/v1/payment_intents", headers=auth,
                         params={"starting_after": ids[2], "limit": 1})
    assert r.status_code == 200 and [p["id"] for p in r.json()["data"]] == [ids[1]]
    r = await client.get("/v1/payment_intents", headers=auth,
                         params={"ending_before": ids[0], "limit": 5})
    assert [p["id"] for p in r.json()["data"]] == [ids[2], ids[1]]
    # the oldest object is a valid cursor with nothing after it: an empty page, not a 400
    r = await client.get("/v1/payment_intents", headers=auth, params={"starting_after": ids[0]})
    assert r.status_code == 200 and r.json()["data"] == []


async def test_an_unknown_delivery_cursor_is_resource_missing(client, auth):
    r = await client.post("/v1/webhook_endpoints", headers=auth, data={
        "url": "http://127.0.0.1:9/x", "enabled_events[]": "*"})
    ep = r.json()["id"]
    try:
        r = await client.get(f"/v1/webhook_endpoints/{ep}/deliveries", headers=auth,
                             params={"starting_after": "whdel_999999999"})
        assert r.status_code == 400, r.text
        assert (r.json()["error"]["code"], r.json()["error"]["param"]) == (
            "resource_missing", "starting_after")
    finally:
        await client.delete(f"/v1/webhook_endpoints/{ep}", headers=auth)
