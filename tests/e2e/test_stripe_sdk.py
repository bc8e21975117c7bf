"""Stripe's own Python SDK talks to kassa by changing its base URL (form bodies, brackets)."""

from __future__ import annotations

import asyncio

import pytest
import stripe
import uvicorn

# the SDK's httpx transport passes bytes as data=, which httpx deprecates
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


@pytest.fixture
def kassa_url(kassa):
    from kassa.api.app import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(kassa=kassa, key_cache_seconds=0.0),
                                           host="127.0.0.1", port=0, log_level="warning",
                                           lifespan="off"))
    # the app's pool belongs to the test loop, so the server runs on that loop too
    task = asyncio.get_event_loop().create_task(server.serve())
    yield server, task


async def test_stripe_sdk_round_trip(kassa_url, merchant):
    server, task = kassa_url
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    http = stripe.HTTPXClient()
    client = stripe.StripeClient(merchant["secret_key"], http_client=http,
                                 base_addresses={"api": f"http://127.0.0.1:{port}"})
    try:
        pi = await client.v1.payment_intents.create_async(params={
            "amount": 1999, "currency": "usd", "payment_method": "pm_card_visa",
            "capture_method": "manual", "confirm": True, "metadata": {"order": "42"}},
            options={"idempotency_key": "sdk-key-1"})
        assert pi.status == "requires_capture" and pi.metadata["order"] == "42"
        captured = await client.v1.payment_intents.capture_async(
            pi.id, params={"amount_to_capture": 1500})
        assert captured.status == "succeeded" and captured.amount_received == 1500
        refund = await client.v1.refunds.create_async(params={"payment_intent": pi.id,
                                                              "amount": 500})
        assert refund.status == "succeeded"
        listed = await client.v1.payment_intents.list_async(params={"limit": 3})
        assert [p.id for p in listed.data] == [pi.id]
        with pytest.raises(stripe.CardError) as declined:
            await client.v1.payment_intents.create_async(params={
                "amount": 500, "currency": "usd", "confirm": True,
                "payment_method": "pm_card_chargeDeclined"})
        assert declined.value.code == "card_declined"
        with pytest.raises(stripe.InvalidRequestError):
            await client.v1.payment_intents.retrieve_async("pi_nope")
        with pytest.raises(stripe.IdempotencyError):
            await client.v1.payment_intents.create_async(params={
                "amount": 2, "currency": "usd"}, options={"idempotency_key": "sdk-key-1"})
    finally:
        await http.close_async()
        server.should_exit = True
        await task
