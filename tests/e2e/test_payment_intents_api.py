"""The payment API over HTTP (in-process ASGI): flows, Stripe-shaped errors, tenancy, lists."""

from __future__ import annotations

import httpx
import pytest


async def create(client: httpx.AsyncClient, auth: dict[str, str], **params: object
                 ) -> httpx.Response:
    data = {"amount": 2000, "currency": "usd", **params}
    return await client.post("/v1/payment_intents", headers=auth,
                             data={k: str(v).lower() if isinstance(v, bool) else str(v)
                                   for k, v in data.items()})


async def events_for(client, auth, object_id: str) -> list[str]:
    r = await client.get("/v1/events", headers=auth, params={"limit": 100})
    return [e["type"] for e in reversed(r.json()["data"])
            if e["data"]["object"].get("id") == object_id
            or e["data"]["object"].get("payment_intent") == object_id]


async def test_automatic_capture_posts_ledger_and_events(client, auth):
    r = await create(client, auth, payment_method="pm_card_visa", confirm=True,
                     description="order 7")
    assert r.status_code == 200, r.text
    pi = r.json()
    assert pi["object"] == "payment_intent" and pi["id"].startswith("pi_")
    assert (pi["status"], pi["amount_received"], pi["amount_capturable"]) == ("succeeded",
                                                                              2000, 0)
    assert pi["latest_charge"].startswith("ch_")
    assert await events_for(client, auth, pi["id"]) == ["payment_intent.created",
                                                        "payment_intent.succeeded"]
    bts = (await client.get("/v1/balance_transactions", headers=auth)).json()["data"]
    assert [(b["type"], b["amount"], b["fee"], b["net"], b["status"]) for b in bts] == [
        ("charge", 2000, 88, 1912, "pending")]  # 2.9% + 30
    bal = (await client.get("/v1/balance", headers=auth)).json()
    assert bal["pending"][0]["amount"] == 1912 and bal["available"][0]["amount"] == 0


async def test_manual_capture_partial_then_refunds(client, auth):
    pi = (await create(client, auth, payment_method="pm_card_mastercard", confirm=True,
                       capture_method="manual")).json()
    assert (pi["status"], pi["amount_capturable"]) == ("requires_capture", 2000)
    r = await client.post(f"/v1/payment_intents/{pi['id']}/capture", headers=auth,
                          data={"amount_to_capture": "3000"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "amount_to_capture"
    r = await client.post(f"/v1/payment_intents/{pi['id']}/capture", headers=auth,
                          data={"amount_to_capture": "1500"})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["amount_received"]) == ("succeeded", 1500)
    # several partial refunds, up to the captured amount and no further
    for amount in (500, 700):
        r = await client.post("/v1/refunds", headers=auth,
                              data={"payment_intent": pi["id"], "amount": str(amount)})
        assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    r = await client.post("/v1/refunds", headers=auth,
                          data={"payment_intent": pi["id"], "amount": "301"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "amount_too_large"
    r = await client.post("/v1/refunds", headers=auth, data={"payment_intent": pi["id"]})
    assert r.status_code == 200 and r.json()["amount"] == 300
    r = await client.post("/v1/refunds", headers=auth, data={"payment_intent": pi["id"]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "charge_already_refunded"
    got = (await client.get(f"/v1/payment_intents/{pi['id']}", headers=auth)).json()
    assert got["amount_refunded"] == 1500
    refunds = (await client.get("/v1/refunds", headers=auth,
                                params={"payment_intent": pi["id"]})).json()["data"]
    assert [x["amount"] for x in refunds] == [300, 700, 500]
    assert (await events_for(client, auth, pi["id"])).count("charge.refunded") == 3


async def test_cancel_releases_hold(client, auth):
    pi = (await create(client, auth, payment_method="pm_card_visa", confirm=True,
                       capture_method="manual")).json()
    r = await client.post(f"/v1/payment_intents/{pi['id']}/cancel", headers=auth,
                          data={"cancellation_reason": "requested_by_customer"})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["cancellation_reason"]) == ("canceled",
                                                                     "requested_by_customer")
    assert "payment_intent.canceled" in await events_for(client, auth, pi["id"])
    r = await client.post(f"/v1/payment_intents/{pi['id']}/capture", headers=auth)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "payment_intent_unexpected_state"


async def test_decline_is_402_and_payment_can_be_retried(client, auth):
    r = await create(client, auth, payment_method="pm_card_chargeDeclinedInsufficientFunds",
                     confirm=True)
    assert r.status_code == 402, r.text
    err = r.json()["error"]
    assert (err["type"], err["code"], err["decline_code"]) == ("card_error", "card_declined",
                                                                "insufficient_funds")
    pi = err["payment_intent"]
    assert pi["status"] == "requires_payment_method"
    assert pi["last_payment_error"]["decline_code"] == "insufficient_funds"
    r = await client.post(f"/v1/payment_intents/{pi['id']}/confirm", headers=auth,
                          data={"payment_method": "pm_card_visa"})
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    assert await events_for(client, auth, pi["id"]) == [
        "payment_intent.created", "payment_intent.payment_failed", "payment_intent.succeeded"]


async def complete_3ds(client, url: str, result: str = "succeed") -> httpx.Response:
    """Complete the simulator's 3-D Secure page like a customer's browser: the simulator
    sends the customer back to kassa's return endpoint, which may redirect onwards."""
    async with httpx.AsyncClient() as customer:
        r = await customer.post(url + "/complete", data={"result": result})
    assert r.status_code == 303, r.text
    location = httpx.URL(r.headers["location"])
    assert location.path.startswith("/psp/simulator/return/")
    return await client.get(location.path)  # kassa, in-process


async def test_three_d_secure(client, auth, simulator_url):
    pi = (await create(client, auth, payment_method="pm_card_authenticationRequired",
                       confirm=True)).json()
    assert pi["status"] == "requires_action"
    url = pi["next_action"]["redirect_to_url"]["url"]
    assert url.startswith(simulator_url)
    assert pi["next_action"]["redirect_to_url"]["return_url"] is None
    r = await client.post(f"/v1/payment_intents/{pi['id']}/confirm", headers=auth)
    assert r.status_code == 400  # authentication not complete yet
    back = await complete_3ds(client, url)
    assert back.status_code == 200 and "succeeded" in back.text
    # recorded when the customer came back: no second confirm needed
    got = (await client.get(f"/v1/payment_intents/{pi['id']}", headers=auth)).json()
    assert got["status"] == "succeeded" and got["amount_received"] == 2000, got
    r = await client.post(f"/v1/payment_intents/{pi['id']}/confirm", headers=auth)
    assert r.status_code == 400


async def test_three_d_secure_return_url_sees_the_final_status(client, auth):
    pi = (await create(client, auth, payment_method="pm_card_authenticationRequired",
                       confirm=True, return_url="https://shop.example/done?order=7")).json()
    assert pi["next_action"]["redirect_to_url"]["return_url"] == \
        "https://shop.example/done?order=7"
    back = await complete_3ds(client, pi["next_action"]["redirect_to_url"]["url"], "fail")
    assert back.status_code == 303
    target = httpx.URL(back.headers["location"])
    assert (target.host, target.path) == ("shop.example", "/done")
    assert dict(target.params) == {"order": "7", "payment_intent": pi["id"],
                                   "redirect_status": "failed"}
    got = (await client.get(f"/v1/payment_intents/{pi['id']}", headers=auth)).json()
    assert got["status"] == "requires_payment_method"
    assert got["last_payment_error"]["decline_code"] == "authentication_failed"


async def test_cancel_before_confirm_and_illegal_transitions(client, auth):
    pi = (await create(client, auth)).json()
    assert pi["status"] == "requires_payment_method"
    r = await client.post(f"/v1/payment_intents/{pi['id']}/confirm", headers=auth)
    assert r.status_code == 400 and r.json()["error"]["param"] == "payment_method"
    r = await client.post(f"/v1/payment_intents/{pi['id']}/capture", headers=auth)
    assert r.status_code == 400
    r = await client.post(f"/v1/payment_intents/{pi['id']}/cancel", headers=auth)
    assert r.json()["status"] == "canceled"
    r = await client.post(f"/v1/payment_intents/{pi['id']}/cancel", headers=auth)
    assert r.status_code == 400
    r = await client.post(f"/v1/payment_intents/{pi['id']}/confirm", headers=auth,
                          data={"payment_method": "pm_card_visa"})
    assert r.status_code == 400
    r = await client.post("/v1/refunds", headers=auth, data={"payment_intent": pi["id"]})
    assert r.status_code == 400


@pytest.mark.parametrize("params, status, param", [
    ({"amount": "0"}, 400, "amount"),
    ({"amount": "-5"}, 400, "amount"),
    ({"amount": "100000000000000000000000"}, 400, "amount"),
    ({"amount": "12.5"}, 400, "amount"),
    ({"amount": "abc"}, 400, "amount"),
    ({"currency": "xyz"}, 400, "currency"),
    ({"currency": "us"}, 400, "currency"),
    ({"capture_method": "later"}, 400, "capture_method"),
    ({"payment_method": "pm_nope"}, 400, "payment_method"),
    ({"bogus": "1"}, 400, "bogus"),
    ({"metadata[k]": "x" * 501}, 400, "metadata"),
])
async def test_bad_parameters_are_400(client, auth, params, status, param):
    r = await create(client, auth, **params)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == param, err


async def test_missing_amount_and_malformed_bodies(client, auth):
    r = await client.post("/v1/payment_intents", headers=auth, data={"currency": "usd"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "parameter_missing"
    r = await client.post("/v1/payment_intents", content=b"{not json",
                          headers={**auth, "content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = await client.post("/v1/payment_intents", content=b"[1,2]",
                          headers={**auth, "content-type": "application/json"})
    assert r.status_code == 400
    r = await client.post("/v1/payment_intents", json={"amount": True, "currency": "usd"},
                          headers=auth)
    assert r.status_code == 400
    r = await client.post("/v1/payment_intents", content=b"\xff\xfe",
                          headers={**auth, "content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400
    r = await client.post("/v1/payment_intents", content=b"x", headers={
        **auth, "content-type": "text/plain"})
    assert r.status_code == 400


async def test_a_refund_by_charge_alone_is_refused_before_its_key_is_taken(client, auth):
    pi = (await create(client, auth, payment_method="pm_card_visa", confirm=True)).json()
    for key in (None, "refund-by-charge"):
        headers = auth if key is None else {**auth, "Idempotency-Key": key}
        r = await client.post("/v1/refunds", headers=headers,
                              data={"charge": pi["latest_charge"], "amount": "500"})
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error.pop("request_log_url").endswith(r.headers["Request-Id"])
        assert error == {
            "type": "invalid_request_error", "code": "parameter_invalid", "param": "charge",
            "message": "Refunds by charge are not supported; pass payment_intent."}
    r = await client.post("/v1/refunds", headers={**auth, "Idempotency-Key": "refund-by-charge"},
                          data={"payment_intent": pi["id"], "amount": "500"})
    assert r.status_code == 200 and r.json()["amount"] == 500, r.text


async def test_json_bodies_work_like_forms(client, auth):
    r = await client.post("/v1/payment_intents", headers=auth, json={
        "amount": 1234, "currency": "JPY", "payment_method": "pm_card_visa", "confirm": True,
        "metadata": {"order": 7}})
    assert r.status_code == 200, r.text
    pi = r.json()
    assert (pi["currency"], pi["status"], pi["metadata"]) == ("jpy", "succeeded",
                                                              {"order": "7"})


async def test_authentication_and_tenancy(client, auth, kassa):
    r = await client.get("/v1/payment_intents")
    assert r.status_code == 401 and r.json()["error"]["type"] == "invalid_request_error"
    r = await client.get("/v1/payment_intents", headers={"Authorization": "Bearer sk_test_x"})
    assert r.status_code == 401
    mine = (await create(client, auth, payment_method="pm_card_visa", confirm=True)).json()
    from kassa.services import merchants

    other = await merchants.create_merchant(kassa, name="Other")
    other_auth = {"Authorization": f"Bearer {other['secret_key']}"}
    for method, path in [("GET", f"/v1/payment_intents/{mine['id']}"),
                         ("POST", f"/v1/payment_intents/{mine['id']}/confirm"),
                         ("POST", f"/v1/payment_intents/{mine['id']}/capture"),
                         ("POST", f"/v1/payment_intents/{mine['id']}/cancel")]:
        r = await client.request(method, path, headers=other_auth)
        assert r.status_code == 404, (path, r.text)
        assert r.json()["error"]["code"] == "resource_missing"
    r = await client.post("/v1/refunds", headers=other_auth, data={"payment_intent": mine["id"]})
    assert r.status_code == 404
    assert (await client.get("/v1/payment_intents", headers=other_auth)).json()["data"] == []
    assert (await client.get("/v1/events", headers=other_auth)).json()["data"] == []
    pk = {"Authorization": f"Bearer {other['publishable_key']}"}
    assert (await client.get("/v1/payment_intents", headers=pk)).status_code == 403


async def test_pagination(client, auth):
    ids = [(await create(client, auth, amount=100 + i)).json()["id"] for i in range(5)]
    page = (await client.get("/v1/payment_intents", headers=auth, params={"limit": 2})).json()
    assert [p["id"] for p in page["data"]] == ids[::-1][:2] and page["has_more"]
    page2 = (await client.get("/v1/payment_intents", headers=auth, params={
        "limit": 2, "starting_after": page["data"][-1]["id"]})).json()
    assert [p["id"] for p in page2["data"]] == ids[::-1][2:4] and page2["has_more"]
    page3 = (await client.get("/v1/payment_intents", headers=auth, params={
        "limit": 10, "starting_after": page2["data"][-1]["id"]})).json()
    assert [p["id"] for p in page3["data"]] == [ids[0]] and not page3["has_more"]
    back = (await client.get("/v1/payment_intents", headers=auth, params={
        "limit": 2, "ending_before": ids[0]})).json()
    assert [p["id"] for p in back["data"]] == [ids[2], ids[1]]
    r = await client.get("/v1/payment_intents", headers=auth, params={"limit": 0})
    assert r.status_code == 400


async def test_unknown_routes_and_objects(client, auth):
    r = await client.get("/v1/nope", headers=auth)
    assert r.status_code == 404 and r.json()["error"]["type"] == "invalid_request_error"
    r = await client.get("/v1/payment_intents/pi_missing", headers=auth)
    assert r.status_code == 404 and r.json()["error"]["code"] == "resource_missing"
    assert (await client.get("/v1/refunds/re_missing", headers=auth)).status_code == 404
    assert (await client.get("/v1/events/evt_missing", headers=auth)).status_code == 404


async def test_event_retrieve_and_type_filter(client, auth):
    pi = (await create(client, auth, payment_method="pm_card_visa", confirm=True)).json()
    listed = (await client.get("/v1/events", headers=auth,
                               params={"type": "payment_intent.succeeded"})).json()["data"]
    assert [e["data"]["object"]["id"] for e in listed] == [pi["id"]]
    event = (await client.get(f"/v1/events/{listed[0]['id']}", headers=auth)).json()
    assert event["type"] == "payment_intent.succeeded" and event["id"].startswith("evt_")
    assert event["data"]["object"]["status"] == "succeeded"


async def test_confirming_an_authorised_payment_does_not_authorise_twice(client, auth, sim,
                                                                         merchant):
    pi = (await create(client, auth, payment_method="pm_card_visa", confirm=True,
                       capture_method="manual")).json()
    r = await client.post(f"/v1/payment_intents/{pi['id']}/confirm", headers=auth)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "payment_intent_unexpected_state"
    rows = (await sim.get("/_sim/authorizations")).json()
    rows = rows["data"] if isinstance(rows, dict) else rows
    assert len([a for a in rows if a["merchant_id"] == merchant["merchant_id"]]) == 1
