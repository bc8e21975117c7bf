"""Deliveries carry Stripe-Signature too, so Stripe's own verifier
(stripe.Webhook.construct_event) accepts real deliveries as they arrive; per endpoint, on by
default, off through the API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import stripe

from tests.support.webhook_receiver import (
    WebhookReceiver,
    create_endpoint,
    delete_endpoints,
    eventually,
    pay,
    running_sender,
)


@pytest.fixture(autouse=True)
async def cleanup(client, auth) -> AsyncIterator[None]:
    yield
    await delete_endpoints(client, auth)


async def _received(rx: WebhookReceiver, n: int) -> bool:
    return len(rx.answered()) >= n


async def test_stripes_verifier_accepts_a_real_delivery(client, auth, kassa):
    async with WebhookReceiver() as rx:
        ep = await create_endpoint(client, auth, rx.url, ["payment_intent.succeeded"])
        assert ep["stripe_signature"] is True  # on by default
        pi = await pay(client, auth)
        async with running_sender(kassa.pool):
            await eventually(lambda: _received(rx, 1), what="a delivery")
    [req] = rx.received
    header = req.headers["Stripe-Signature"]
    assert header == req.headers["Kassa-Signature"]
    event = stripe.Webhook.construct_event(req.body, header, ep["secret"])
    assert isinstance(event, stripe.Event)
    assert event.type == "payment_intent.succeeded" and event.data.object.id == pi["id"]
    # the SDK's checks are real: another secret, a changed body, an old timestamp all fail
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(req.body, header, "whsec_other")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(req.body + b" ", header, ep["secret"])
    t = int(header.split(",")[0].removeprefix("t="))
    assert abs(t - time.time()) < 60  # the send time: within the SDK's default 300 s
    await asyncio.sleep(1.5)
    with pytest.raises(stripe.SignatureVerificationError, match="tolerance"):
        stripe.WebhookSignature.verify_header(req.body.decode(), header, ep["secret"],
                                              tolerance=1)


async def test_during_a_rotation_either_secret_verifies(client, auth, kassa):
    async with WebhookReceiver() as rx:
        ep = await create_endpoint(client, auth, rx.url, ["payment_intent.succeeded"])
        rotated = (await client.post(f"/v1/webhook_endpoints/{ep['id']}/rotate_secret",
                                     headers=auth, data={"expires_in": "3600"})).json()
        await pay(client, auth)
        async with running_sender(kassa.pool):
            await eventually(lambda: _received(rx, 1), what="a delivery")
    [req] = rx.received
    for secret in (ep["secret"], rotated["secret"]):
        stripe.Webhook.construct_event(req.body, req.headers["Stripe-Signature"], secret)


async def test_the_stripe_header_can_be_turned_off_and_on(client, auth, kassa):
    r = await client.post("/v1/webhook_endpoints", headers=auth, data={
        "url": "http://127.0.0.1:9/x", "enabled_events[]": "*", "stripe_signature": "false"})
    assert r.status_code == 200 and r.json()["stripe_signature"] is False
    got = (await client.get(f"/v1/webhook_endpoints/{r.json()['id']}", headers=auth)).json()
    assert got["stripe_signature"] is False  # persisted
    async with WebhookReceiver() as rx:
        ep = await create_endpoint(client, auth, rx.url, ["payment_intent.succeeded"])
        off = await client.post(f"/v1/webhook_endpoints/{ep['id']}", headers=auth,
                                data={"stripe_signature": "false"})
        assert off.json()["stripe_signature"] is False
        await pay(client, auth)
        async with running_sender(kassa.pool):
            await eventually(lambda: _received(rx, 1), what="a delivery")
        on = await client.post(f"/v1/webhook_endpoints/{ep['id']}", headers=auth,
                               data={"stripe_signature": "true", "description": "back"})
        assert on.json()["stripe_signature"] is True
        await pay(client, auth)
        async with running_sender(kassa.pool):
            await eventually(lambda: _received(rx, 2), what="a second delivery")
    first, second = rx.received
    assert "Stripe-Signature" not in first.headers and "Kassa-Signature" in first.headers
    assert second.headers["Stripe-Signature"] == second.headers["Kassa-Signature"]


async def test_the_setting_is_validated_like_every_boolean(client, auth):
    r = await client.post("/v1/webhook_endpoints", headers=auth, data={
        "url": "http://127.0.0.1:9/x", "enabled_events[]": "*", "stripe_signature": "maybe"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "stripe_signature"
