"""/v1/webhook_endpoints over HTTP: the object, validation, the secret shown once, tenancy,
SSRF refusal in production, the fan-out trigger and redelivery's API contract."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from kassa.api.app import create_app
from kassa.services import merchants
from kassa.services.webhooks import WebhookPolicy
from tests.support.webhook_receiver import create_endpoint, deliveries, pay

URL = "http://127.0.0.1:9/hooks"  # nothing listens there: no sender runs in this module


@pytest.fixture
async def other_auth(kassa) -> dict[str, str]:
    m = await merchants.create_merchant(kassa, name="Other merchant")
    return {"Authorization": f"Bearer {m['secret_key']}"}


@pytest.fixture(autouse=True)
async def cleanup(client, auth) -> AsyncIterator[None]:
    yield
    r = await client.get("/v1/webhook_endpoints", headers=auth, params={"limit": 100})
    for e in r.json()["data"]:
        await client.delete(f"/v1/webhook_endpoints/{e['id']}", headers=auth)


async def test_create_returns_the_secret_once(client, auth):
    r = await client.post("/v1/webhook_endpoints", headers=auth, data={
        "url": URL, "enabled_events[]": ["payment_intent.succeeded", "charge.refunded"],
        "description": "orders", "metadata[team]": "payments"})
    assert r.status_code == 200, r.text
    ep = r.json()
    assert ep["id"].startswith("we_") and ep["object"] == "webhook_endpoint"
    assert ep["secret"].startswith("whsec_") and len(ep["secret"]) > 40
    assert (ep["url"], ep["status"], ep["description"], ep["metadata"]) == (
        URL, "enabled", "orders", {"team": "payments"})
    assert ep["enabled_events"] == ["charge.refunded", "payment_intent.succeeded"]
    got = (await client.get(f"/v1/webhook_endpoints/{ep['id']}", headers=auth)).json()
    assert "secret" not in got and got == {k: v for k, v in ep.items() if k != "secret"}
    listed = (await client.get("/v1/webhook_endpoints", headers=auth)).json()
    assert listed["object"] == "list" and all("secret" not in e for e in listed["data"])
    assert [e["id"] for e in listed["data"]] == [ep["id"]]


async def test_create_is_idempotent(client, auth):
    headers = {**auth, "Idempotency-Key": "we-create-1"}
    first = await client.post("/v1/webhook_endpoints", headers=headers,
                              data={"url": URL, "enabled_events[]": "*"})
    again = await client.post("/v1/webhook_endpoints", headers=headers,
                              data={"url": URL, "enabled_events[]": "*"})
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == first.json()
    listed = (await client.get("/v1/webhook_endpoints", headers=auth)).json()["data"]
    assert len(listed) == 1


@pytest.mark.parametrize(("data", "param"), [
    ({"url": URL}, "enabled_events"),
    ({"enabled_events[]": "*"}, "url"),
    ({"url": URL, "enabled_events[]": "payment_intent.exploded"}, "enabled_events"),
    ({"url": "ftp://example.com/x", "enabled_events[]": "*"}, "url"),
    ({"url": "https://user:pw@example.com/x", "enabled_events[]": "*"}, "url"),
    ({"url": "not a url", "enabled_events[]": "*"}, "url"),
    ({"url": "https:///nohost", "enabled_events[]": "*"}, "url"),
    ({"url": URL, "enabled_events[]": "*", "colour": "red"}, "colour"),
])
async def test_create_validation(client, auth, data, param):
    r = await client.post("/v1/webhook_endpoints", headers=auth, data=data)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == param, err


async def test_update_and_list_pagination(client, auth):
    made = [await create_endpoint(client, auth, f"{URL}/{i}") for i in range(3)]
    ep = made[0]
    r = await client.post(f"/v1/webhook_endpoints/{ep['id']}", headers=auth, json={
        "url": "http://127.0.0.1:9/new", "enabled_events": ["refund.created"],
        "description": "refunds only", "disabled": True, "metadata": {"a": "1"}})
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["url"], got["enabled_events"], got["description"], got["status"],
            got["metadata"]) == ("http://127.0.0.1:9/new", ["refund.created"], "refunds only",
                                 "disabled", {"a": "1"})
    assert "secret" not in got
    r = await client.post(f"/v1/webhook_endpoints/{ep['id']}", headers=auth,
                          data={"metadata[a]": "", "metadata[b]": "2", "description": ""})
    assert (r.json()["metadata"], r.json()["description"]) == ({"b": "2"}, None)
    r = await client.post(f"/v1/webhook_endpoints/{ep['id']}", headers=auth,
                          data={"enabled_events[]": "nope.nope"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "enabled_events"
    page = (await client.get("/v1/webhook_endpoints", headers=auth,
                             params={"limit": 2})).json()
    assert page["has_more"] and [e["id"] for e in page["data"]] == [made[2]["id"], made[1]["id"]]
    rest = (await client.get("/v1/webhook_endpoints", headers=auth,
                             params={"limit": 2, "starting_after": made[1]["id"]})).json()
    assert not rest["has_more"] and [e["id"] for e in rest["data"]] == [ep["id"]]


async def test_tenancy(client, auth, other_auth):
    ep = await create_endpoint(client, auth, URL)
    pi = await pay(client, auth)
    event_id = (await client.get("/v1/events", headers=auth,
                                 params={"limit": 1})).json()["data"][0]["id"]
    base = f"/v1/webhook_endpoints/{ep['id']}"
    for method, path in [("GET", base), ("POST", base), ("DELETE", base),
                         ("POST", base + "/rotate_secret"), ("GET", base + "/deliveries"),
                         ("POST", f"/v1/events/{event_id}/redeliver")]:
        r = await client.request(method, path, headers=other_auth)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"]["code"] == "resource_missing"
    # another merchant cannot aim a redelivery at this endpoint either
    other_pi = await pay(client, other_auth)
    other_event = (await client.get("/v1/events", headers=other_auth,
                                    params={"limit": 1})).json()["data"][0]
    assert other_event["data"]["object"]["id"] == other_pi["id"]
    r = await client.post(f"/v1/events/{other_event['id']}/redeliver", headers=other_auth,
                          data={"endpoint": ep["id"]})
    assert r.status_code == 404 and r.json()["error"]["param"] == "endpoint"
    assert (await client.get("/v1/webhook_endpoints", headers=other_auth)).json()["data"] == []
    assert {d["event"] for d in await deliveries(client, auth, ep["id"])} <= {
        e["id"] for e in (await client.get("/v1/events", headers=auth,
                                           params={"limit": 100})).json()["data"]}
    assert pi["id"]


async def test_fan_out_follows_subscriptions(client, auth, other_auth):
    everything = await create_endpoint(client, auth, URL + "/all", ["*"])
    succeeded = await create_endpoint(client, auth, URL + "/s", ["payment_intent.succeeded"])
    refunds = await create_endpoint(client, auth, URL + "/r", ["refund.created"])
    disabled = await create_endpoint(client, auth, URL + "/d", ["*"])
    await client.post(f"/v1/webhook_endpoints/{disabled['id']}", headers=auth,
                      data={"disabled": "true"})
    theirs = await create_endpoint(client, other_auth, URL + "/theirs", ["*"])
    pi = await pay(client, auth)
    types = {e["id"]: e["type"] for e in (await client.get(
        "/v1/events", headers=auth, params={"limit": 100})).json()["data"]
        if e["data"]["object"]["id"] == pi["id"]}
    assert sorted(types.values()) == ["payment_intent.created", "payment_intent.succeeded"]

    async def got(ep, a=auth) -> list[str]:
        return sorted(d["event_type"] for d in await deliveries(client, a, ep["id"]))
    assert await got(everything) == ["charge.succeeded", "payment_intent.created",
                                     "payment_intent.succeeded"]
    assert await got(succeeded) == ["payment_intent.succeeded"]
    assert await got(refunds) == []
    assert await got(disabled) == []
    assert await got(theirs, other_auth) == []
    for event_id, type_ in types.items():
        e = (await client.get(f"/v1/events/{event_id}", headers=auth)).json()
        assert e["pending_webhooks"] == (2 if type_ == "payment_intent.succeeded" else 1)
    listed = (await client.get("/v1/events", headers=auth, params={"limit": 2})).json()["data"]
    assert sorted(e["pending_webhooks"] for e in listed) == [1, 2]
    await client.delete(f"/v1/webhook_endpoints/{theirs['id']}", headers=other_auth)


async def test_redeliver_to_one_endpoint_creates_the_delivery(client, auth):
    await pay(client, auth)
    event = (await client.get("/v1/events", headers=auth,
                              params={"limit": 1})).json()["data"][0]
    ep = await create_endpoint(client, auth, URL)  # created after the event
    assert await deliveries(client, auth, ep["id"]) == []
    r = await client.post(f"/v1/events/{event['id']}/redeliver", headers=auth)
    assert r.status_code == 200 and r.json()["data"] == []  # nothing delivered or dead yet
    r = await client.post(f"/v1/events/{event['id']}/redeliver", headers=auth,
                          data={"endpoint": ep["id"]})
    assert r.status_code == 200, r.text
    [d] = r.json()["data"]
    assert (d["event"], d["webhook_endpoint"], d["status"]) == (event["id"], ep["id"],
                                                                "pending")
    r = await client.post(f"/v1/events/{event['id']}/redeliver", headers=auth,
                          data={"endpoint": ep["id"]})
    assert r.json()["data"] == []  # already pending: left alone
    [listed] = await deliveries(client, auth, ep["id"], status="pending")
    assert listed["id"] == d["id"] and listed["attempts"] == []
    r = await client.get(f"/v1/webhook_endpoints/{ep['id']}/deliveries", headers=auth,
                         params={"status": "bogus"})
    assert r.status_code == 400


async def test_rotate_secret_validation(client, auth):
    ep = await create_endpoint(client, auth, URL)
    r = await client.post(f"/v1/webhook_endpoints/{ep['id']}/rotate_secret", headers=auth,
                          data={"expires_in": "-1"})
    assert r.status_code == 400
    r = await client.post(f"/v1/webhook_endpoints/{ep['id']}/rotate_secret", headers=auth,
                          data={"expires_in": str(30 * 24 * 3600)})
    assert r.status_code == 400 and r.json()["error"]["param"] == "expires_in"
    r = await client.post(f"/v1/webhook_endpoints/{ep['id']}/rotate_secret", headers=auth)
    assert r.status_code == 200 and r.json()["secret"] != ep["secret"]


# ------------------------------------------------------------------ SSRF in production


async def fake_dns(host: str, port: int) -> list[str]:
    table = {"hooks.example.com": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
             "rebound.example.com": ["93.184.216.34", "10.0.0.7"],
             "metadata.example.com": ["169.254.169.254"]}
    if host not in table:
        raise OSError("Name or service not known")
    return table[host]


@pytest.fixture
async def production_client(kassa) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(kassa=kassa, key_cache_seconds=0.0)
    app.state.webhook_policy = WebhookPolicy(production=True, resolve=fake_dns)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://kassa.test") as c:
        yield c


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/hooks", "https://127.1.2.3:8443/hooks", "https://10.1.2.3/hooks",
    "https://192.168.0.10/hooks", "https://172.16.5.4/hooks", "https://169.254.169.254/latest",
    "https://[::1]/hooks", "https://[fe80::1]/hooks", "https://[::ffff:10.0.0.1]/hooks",
    "https://0.0.0.0/hooks", "https://100.64.0.1/hooks", "https://localhost/hooks",
    "https://svc.internal/hooks", "https://rebound.example.com/hooks",
    "https://metadata.example.com/", "https://unknown.example.com/hooks",
    "http://hooks.example.com/hooks",  # production wants https
])
async def test_production_refuses_non_public_destinations(production_client, auth, url):
    r = await production_client.post("/v1/webhook_endpoints", headers=auth,
                                     data={"url": url, "enabled_events[]": "*"})
    assert r.status_code == 400, (url, r.text)
    assert r.json()["error"]["param"] == "url"


async def test_production_accepts_public_destinations(production_client, client, auth):
    r = await production_client.post("/v1/webhook_endpoints", headers=auth, data={
        "url": "https://hooks.example.com/kassa", "enabled_events[]": "*"})
    assert r.status_code == 200, r.text
    ep = r.json()
    r = await production_client.post(f"/v1/webhook_endpoints/{ep['id']}", headers=auth,
                                     data={"url": "https://10.0.0.1/x"})
    assert r.status_code == 400  # updates are checked too
    # development and test allow loopback receivers
    r = await client.post("/v1/webhook_endpoints", headers=auth,
                          data={"url": "http://localhost:8080/hooks", "enabled_events[]": "*"})
    assert r.status_code == 200, r.text
