"""Request-Id on every answer, the events a request causes naming it, Stripe's headers on
idempotent answers, and the request log an error's request_log_url reads back."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from kassa.api.app import create_app
from kassa.services import merchants, payments

REQ = re.compile(r"^req_[0-9A-Za-z]{14}$")
PAY = {"amount": "2500", "currency": "eur"}


async def events_for(client: httpx.AsyncClient, auth: dict[str, str], object_id: str
                     ) -> list[dict]:
    listed = (await client.get("/v1/events", headers=auth, params={"limit": 100})).json()
    return [e for e in listed["data"] if e["data"]["object"]["id"] == object_id]


@pytest.mark.parametrize(("method", "path", "kwargs", "status"), [
    ("GET", "/healthz", {}, 200),
    ("GET", "/v1/payment_intents", {}, 200),
    ("GET", "/v1/payment_intents/pi_missing", {}, 404),
    ("GET", "/v1/nowhere", {}, 404),
    ("GET", "/v1/payment_intents?limit=1&limit=2", {}, 400),  # refused by the door
    ("POST", "/v1/payment_intents", {"content": b"amount=%FF"}, 400),
])
async def test_every_answer_carries_a_request_id(client, auth, method, path, kwargs, status):
    r = await client.request(method, path, headers=auth, **kwargs)
    assert r.status_code == status, r.text
    assert REQ.match(r.headers["Request-Id"]), r.headers


async def test_a_413_from_the_door_carries_a_request_id(kassa, auth):
    app = create_app(kassa=kassa, key_cache_seconds=0.0, max_body_bytes=64)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://kassa.test") as small:
        r = await small.post("/v1/payment_intents", headers=auth, content=b"a" * 1000)
    assert r.status_code == 413 and REQ.match(r.headers["Request-Id"])


async def test_request_ids_are_unique_per_request(client, auth):
    ids = {(await client.get("/v1/payment_intents", headers=auth)).headers["Request-Id"]
           for _ in range(5)}
    assert len(ids) == 5


async def test_an_unauthenticated_error_has_an_id_but_no_log(client):
    r = await client.get("/v1/payment_intents/pi_x", headers={"Authorization": "Bearer sk_bad"})
    assert r.status_code == 401 and REQ.match(r.headers["Request-Id"])
    assert "request_log_url" not in r.json()["error"]  # no merchant's log to point into


async def test_a_merchants_error_links_its_log_and_stripes_doc(client, auth, merchant, kassa):
    r = await client.get("/v1/payment_intents/pi_missing", headers=auth)
    err = r.json()["error"]
    request_id = r.headers["Request-Id"]
    assert err["doc_url"] == "https://stripe.com/docs/error-codes/resource-missing"
    assert err["request_log_url"] == f"http://kassa.test/v1/request_logs/{request_id}"
    logged = await client.get(err["request_log_url"], headers=auth)
    assert logged.status_code == 200, logged.text
    assert logged.json() == {
        "id": request_id, "object": "request_log", "created": logged.json()["created"],
        "method": "GET", "path": "/v1/payment_intents/pi_missing", "status": 404,
        "idempotency_key": None, "error": err, "livemode": False}
    # another merchant cannot read it
    other = await merchants.create_merchant(kassa, name="Other")
    r = await client.get(err["request_log_url"],
                         headers={"Authorization": f"Bearer {other['secret_key']}"})
    assert r.status_code == 404
    # a success leaves no log
    ok = await client.get("/v1/payment_intents", headers=auth)
    assert (await client.get(f"/v1/request_logs/{ok.headers['Request-Id']}",
                             headers=auth)).status_code == 404


async def test_a_decline_is_logged_with_its_idempotency_key(client, auth):
    key = str(uuid.uuid4())
    r = await client.post("/v1/payment_intents", headers={**auth, "Idempotency-Key": key},
                          data={**PAY, "confirm": "true",
                                "payment_method": "pm_card_chargeDeclined"})
    assert r.status_code == 402
    err = r.json()["error"]
    assert err["doc_url"] == "https://stripe.com/docs/error-codes/card-declined"
    logged = (await client.get(err["request_log_url"], headers=auth)).json()
    assert (logged["status"], logged["idempotency_key"]) == (402, key)
    assert logged["error"]["decline_code"] == err["decline_code"]


async def test_events_name_the_request_that_caused_them(client, auth):
    key = str(uuid.uuid4())
    r = await client.post("/v1/payment_intents", headers={**auth, "Idempotency-Key": key},
                          data={**PAY, "payment_method": "pm_card_visa", "confirm": "true"})
    assert r.status_code == 200
    caused = await events_for(client, auth, r.json()["id"])
    assert {e["type"] for e in caused} >= {"payment_intent.created", "payment_intent.succeeded"}
    assert all(e["request"] == {"id": r.headers["Request-Id"], "idempotency_key": key}
               for e in caused)
    plain = await client.post("/v1/payment_intents", headers=auth, data=PAY)
    [created] = await events_for(client, auth, plain.json()["id"])
    assert created["request"] == {"id": plain.headers["Request-Id"], "idempotency_key": None}
    # the same on /v1/events/{id}
    one = (await client.get(f"/v1/events/{created['id']}", headers=auth)).json()
    assert one["request"] == created["request"]


async def test_events_outside_a_request_have_a_null_request(client, auth, kassa, merchant):
    # what a worker (recovery, PSP webhooks) does: a use case with no API request around it
    pi = await payments.create(kassa, merchant_id=merchant["merchant_id"], amount=700,
                               currency="usd")
    [created] = await events_for(client, auth, pi["id"])
    assert created["request"] == {"id": None, "idempotency_key": None}


async def test_an_idempotent_replay_names_the_original_request(client, auth):
    key = str(uuid.uuid4())
    first = await client.post("/v1/payment_intents", headers={**auth, "Idempotency-Key": key},
                              data=PAY)
    assert first.headers["Original-Request"] == first.headers["Request-Id"]
    assert first.headers["Idempotency-Key"] == key
    assert "Idempotent-Replayed" not in first.headers
    again = await client.post("/v1/payment_intents", headers={**auth, "Idempotency-Key": key},
                              data=PAY)
    # as Stripe: a fresh Request-Id, the first request's id as Original-Request
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Original-Request"] == first.headers["Request-Id"]
    assert REQ.match(again.headers["Request-Id"])
    assert again.headers["Request-Id"] != first.headers["Request-Id"]
    assert again.content == first.content


async def test_an_error_answer_carries_the_key_headers_too(client, auth):
    key = str(uuid.uuid4())
    params = {**PAY, "confirm": "true", "payment_method": "pm_card_chargeDeclined"}
    first = await client.post("/v1/payment_intents", headers={**auth, "Idempotency-Key": key},
                              data=params)
    assert first.status_code == 402
    assert (first.headers["Idempotency-Key"], first.headers["Original-Request"]) == (
        key, first.headers["Request-Id"])
    again = await client.post("/v1/payment_intents", headers={**auth, "Idempotency-Key": key},
                              data=params)
    assert again.status_code == 402 and again.content == first.content
    assert again.headers["Original-Request"] == first.headers["Request-Id"]


async def test_a_key_reused_with_other_parameters_is_stripes_idempotency_error(client, auth):
    key = str(uuid.uuid4())
    await client.post("/v1/payment_intents", headers={**auth, "Idempotency-Key": key},
                      data=PAY)
    r = await client.post("/v1/payment_intents", headers={**auth, "Idempotency-Key": key},
                          data={**PAY, "amount": "2501"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["type"] == "idempotency_error" and "code" not in err
    assert err["message"] == (
        "Keys for idempotent requests can only be used with the same parameters they were "
        f"first used with. Try using a key other than '{key}' if you meant to execute a "
        "different request.")


@pytest.mark.parametrize(("value", "code"), [
    ("abc", "parameter_invalid_integer"), ("1.5", "parameter_invalid_integer"),
])
async def test_an_invalid_integer_over_http(client, auth, value, code):
    r = await client.post("/v1/payment_intents", headers=auth,
                          data={**PAY, "amount": value})
    err = r.json()["error"]
    assert r.status_code == 400 and (err["code"], err["param"]) == (code, "amount")
    assert err["message"] == f"Invalid integer: {value}"
    assert err["doc_url"] == "https://stripe.com/docs/error-codes/parameter-invalid-integer"
    assert err["request_log_url"].endswith(r.headers["Request-Id"])


async def test_a_missing_parameter_is_parameter_missing(client, auth):
    r = await client.post("/v1/payment_intents", headers=auth, data={"currency": "usd"})
    err = r.json()["error"]
    assert (err["code"], err["param"]) == ("parameter_missing", "amount")
    assert err["doc_url"] == "https://stripe.com/docs/error-codes/parameter-missing"
