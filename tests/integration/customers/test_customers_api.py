"""/v1/customers against real PostgreSQL: Stripe's shapes, updates as patches, delete as
``deleted: true``, lists by email and created with cursors, search, events."""

from __future__ import annotations

from tests.support.stripe_schema import assert_stripe_shape


def _auth(shop):
    return {"Authorization": f"Bearer {shop['secret_key']}"}


async def test_create_retrieve_update_delete(api, shop):
    h = _auth(shop)
    r = await api.post("/v1/customers", headers=h, data={
        "email": "jenny@example.com", "name": "Jenny Rosen", "phone": "+15555550100",
        "description": "first", "metadata[tier]": "gold", "metadata[ref]": "7"})
    assert r.status_code == 200, r.text
    cus = r.json()
    assert cus["id"].startswith("cus_") and cus["object"] == "customer"
    assert_stripe_shape(cus, "Customer")
    assert cus["invoice_settings"]["default_payment_method"] is None
    assert (cus["email"], cus["name"], cus["metadata"]) == (
        "jenny@example.com", "Jenny Rosen", {"tier": "gold", "ref": "7"})
    r = await api.get(f"/v1/customers/{cus['id']}", headers=h)
    assert r.json() == cus

    r = await api.post(f"/v1/customers/{cus['id']}", headers=h, data={
        "name": "Jenny R.", "phone": "", "metadata[ref]": "", "metadata[new]": "x"})
    assert r.status_code == 200, r.text
    updated = r.json()
    assert updated["name"] == "Jenny R." and updated["phone"] is None
    assert updated["metadata"] == {"tier": "gold", "new": "x"}
    assert updated["email"] == "jenny@example.com"  # not given: kept

    r = await api.delete(f"/v1/customers/{cus['id']}", headers=h)
    assert r.status_code == 200, r.text
    assert r.json() == {"id": cus["id"], "object": "customer", "deleted": True}
    r = await api.get(f"/v1/customers/{cus['id']}", headers=h)
    assert r.json() == {"id": cus["id"], "object": "customer", "deleted": True}
    r = await api.delete(f"/v1/customers/{cus['id']}", headers=h)
    assert r.status_code == 404
    r = await api.post(f"/v1/customers/{cus['id']}", headers=h, data={"name": "x"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "id"

    r = await api.get("/v1/events", headers=h, params={"type": "customer.*"})
    types = [e["type"] for e in r.json()["data"] if e["data"]["object"]["id"] == cus["id"]]
    assert types == ["customer.deleted", "customer.updated", "customer.created"]
    updated_event = next(e for e in r.json()["data"] if e["type"] == "customer.updated")
    assert updated_event["data"]["previous_attributes"]["name"] == "Jenny Rosen"


async def test_bad_input_is_a_stripe_400(api, shop):
    h = _auth(shop)
    for data, param in (({"email": "not-an-address"}, "email"),
                        ({"colour": "red"}, "colour"),
                        ({"name": "x" * 300}, "name"),
                        ({"invoice_settings[default_payment_method]": "pm_nope"},
                         "invoice_settings[default_payment_method]")):
        r = await api.post("/v1/customers", headers=h, data=data)
        assert r.status_code == 400, (data, r.text)
        assert r.json()["error"]["type"] == "invalid_request_error"
        assert r.json()["error"]["param"] == param, r.json()
    r = await api.get("/v1/customers/cus_missing", headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "resource_missing"


async def test_list_filters_and_cursors(api, shop):
    h = _auth(shop)
    ids = []
    for i in range(5):
        r = await api.post("/v1/customers", headers=h,
                           data={"email": "same@example.com" if i % 2 else f"c{i}@example.com"})
        ids.append(r.json()["id"])
    r = await api.get("/v1/customers", headers=h, params={"limit": 2})
    page = r.json()
    assert page["object"] == "list" and page["url"] == "/v1/customers"
    assert [c["id"] for c in page["data"]] == ids[::-1][:2] and page["has_more"] is True
    r = await api.get("/v1/customers", headers=h,
                      params={"limit": 10, "starting_after": ids[3]})
    assert [c["id"] for c in r.json()["data"]] == ids[2::-1]
    r = await api.get("/v1/customers", headers=h, params={"ending_before": ids[1]})
    assert [c["id"] for c in r.json()["data"]] == ids[:1:-1]
    r = await api.get("/v1/customers", headers=h, params={"email": "same@example.com"})
    assert [c["id"] for c in r.json()["data"]] == [ids[3], ids[1]]
    r = await api.get("/v1/customers", headers=h, params={"created[gt]": 2**40})
    assert r.json()["data"] == []
    r = await api.get("/v1/customers", headers=h, params={"starting_after": "cus_nope"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "resource_missing"
    await api.delete(f"/v1/customers/{ids[3]}", headers=h)
    r = await api.get("/v1/customers", headers=h, params={"email": "same@example.com"})
    assert [c["id"] for c in r.json()["data"]] == [ids[1]]


async def test_search(api, shop):
    h = _auth(shop)
    r = await api.post("/v1/customers", headers=h,
                       data={"email": "search-me@example.com", "name": "Ada Lovelace",
                             "metadata[plan]": "pro"})
    ada = r.json()["id"]
    await api.post("/v1/customers", headers=h, data={"name": "Alan Turing"})
    r = await api.get("/v1/customers/search", headers=h,
                      params={"query": "name~'Lovelace' AND metadata['plan']:'pro'"})
    assert r.status_code == 200, r.text
    assert r.json()["object"] == "search_result"
    assert [c["id"] for c in r.json()["data"]] == [ada]
    await api.delete(f"/v1/customers/{ada}", headers=h)
    r = await api.get("/v1/customers/search", headers=h,
                      params={"query": "email:'search-me@example.com'"})
    assert r.json()["data"] == []


async def test_another_merchants_customer_is_404(api, shop):
    from kassa.services import merchants

    other = await merchants.create_merchant(api.kassa, name="Other")
    r = await api.post("/v1/customers", headers=_auth(shop), data={"name": "Mine"})
    cus = r.json()["id"]
    r = await api.get(f"/v1/customers/{cus}", headers=_auth(other))
    assert r.status_code == 404
    r = await api.post("/v1/payment_intents", headers=_auth(other), data={
        "amount": "100", "currency": "usd", "customer": cus})
    assert r.status_code == 404 or r.json()["error"]["param"] == "customer"
