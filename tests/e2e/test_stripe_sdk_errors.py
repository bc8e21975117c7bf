"""Stripe's Python SDK sees kassa's errors as it sees Stripe's: the right exception classes,
with code, doc_url, request_log_url and request_id, and Stripe's replay headers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import stripe

from kassa.api.app import create_app
from tests.support.api_server import serving

# the SDK's httpx transport passes bytes as data=, which httpx deprecates
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


@pytest.fixture
async def sdk(kassa, merchant) -> AsyncIterator[tuple[stripe.StripeClient, str]]:
    async with serving(create_app(kassa=kassa, key_cache_seconds=0.0)) as url:
        http = stripe.HTTPXClient()
        client = stripe.StripeClient(merchant["secret_key"], http_client=http,
                                     base_addresses={"api": url}, max_network_retries=0)
        try:
            yield client, url
        finally:
            await http.close_async()


async def test_a_decline_is_a_card_error_with_stripes_fields(sdk, auth):
    client, url = sdk
    with pytest.raises(stripe.CardError) as raised:
        await client.v1.payment_intents.create_async(params={
            "amount": 500, "currency": "usd", "confirm": True,
            "payment_method": "pm_card_chargeDeclined"})
    e = raised.value
    assert (e.code, e.http_status) == ("card_declined", 402)
    assert e.request_id is not None and e.request_id.startswith("req_")
    assert e.error is not None
    assert e.error.doc_url == "https://stripe.com/docs/error-codes/card-declined"
    assert e.error.request_log_url == f"{url}/v1/request_logs/{e.request_id}"
    assert e.error.decline_code == "generic_decline"
    async with httpx.AsyncClient() as c:
        logged = await c.get(e.error.request_log_url, headers=auth)
    assert logged.status_code == 200 and logged.json()["error"]["code"] == "card_declined"


@pytest.mark.parametrize(("params", "code", "param"), [
    ({"amount": "ten", "currency": "usd"}, "parameter_invalid_integer", "amount"),
    ({"currency": "usd"}, "parameter_missing", "amount"),
    ({"amount": 100, "currency": "usd", "payment_method": ""}, "parameter_invalid_empty",
     "payment_method"),
])
async def test_parameter_errors_are_invalid_request_errors(sdk, params, code, param):
    client, _ = sdk
    with pytest.raises(stripe.InvalidRequestError) as raised:
        await client.v1.payment_intents.create_async(params=params)
    e = raised.value
    assert (e.code, e.param, e.http_status) == (code, param, 400)
    assert e.error is not None
    assert e.error.doc_url == "https://stripe.com/docs/error-codes/" + code.replace("_", "-")
    assert e.error.request_log_url is not None
    assert e.error.request_log_url.endswith(str(e.request_id))


async def test_an_unknown_cursor_and_object_are_resource_missing(sdk):
    client, _ = sdk
    with pytest.raises(stripe.InvalidRequestError) as raised:
        await client.v1.payment_intents.list_async(params={"starting_after": "pi_gone"})
    assert (raised.value.code, raised.value.param, raised.value.http_status) == (
        "resource_missing", "starting_after", 400)
    with pytest.raises(stripe.InvalidRequestError) as raised:
        await client.v1.payment_intents.retrieve_async("pi_gone")
    assert (raised.value.code, raised.value.http_status) == ("resource_missing", 404)


async def test_a_reused_key_is_an_idempotency_error(sdk):
    client, _ = sdk
    await client.v1.payment_intents.create_async(params={"amount": 100, "currency": "usd"},
                                                 options={"idempotency_key": "py-reuse"})
    with pytest.raises(stripe.IdempotencyError) as raised:
        await client.v1.payment_intents.create_async(
            params={"amount": 101, "currency": "usd"}, options={"idempotency_key": "py-reuse"})
    assert raised.value.code is None  # Stripe's answer has a type and no code
    assert str(raised.value.user_message).startswith(
        "Keys for idempotent requests can only be used with the same parameters")


async def test_a_replay_carries_stripes_headers(sdk):
    client, _ = sdk
    params = {"amount": 300, "currency": "usd"}
    first = await client.v1.payment_intents.create_async(
        params=params, options={"idempotency_key": "py-replay"})
    again = await client.v1.payment_intents.create_async(
        params=params, options={"idempotency_key": "py-replay"})
    assert again.id == first.id
    first_headers = first.last_response.headers
    headers = again.last_response.headers
    assert headers["Idempotent-Replayed"] == "true"
    assert headers["Original-Request"] == first.last_response.request_id
    assert again.last_response.request_id != first.last_response.request_id
    assert first_headers["Original-Request"] == first.last_response.request_id
