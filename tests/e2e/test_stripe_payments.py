"""A kassa whose payments go to Stripe (its adapter pointed at localstripe) takes payments
over HTTP; kassa's ledger matches what localstripe recorded, and localstripe's signed
webhooks reach kassa's inbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from kassa import bootstrap
from kassa.api.app import create_app
from kassa.ledger.verify import verify
from kassa.psp.base import Card
from kassa.psp.stripe import StripeSettings
from kassa.services import merchants
from kassa.services.context import Kassa
from kassa.vault.resolver import Resolved
from kassa.webhooks import inbound as psp_webhooks
from tests.support.api_server import serving
from tests.support.localstripe_records import stripe_payment
from tests.support.localstripe_server import API_KEY

SECRET = "whsec_e2e_localstripe"


@pytest.fixture(scope="module")
async def stripe_kassa(settings, dsn, localstripe_url) -> AsyncIterator[Kassa]:
    stripe = StripeSettings(secret_key=API_KEY, api_base=localstripe_url, localstripe=True,
                            webhook_secret=SECRET)
    built = await bootstrap.build(settings.model_copy(update={"default_psp": "stripe"}), dsn,
                                  pool_size=6, stripe=stripe)
    yield built[0]
    await built[1]()


@pytest.fixture(scope="module")
async def stripe_api(stripe_kassa) -> AsyncIterator[str]:
    async with serving(create_app(kassa=stripe_kassa, key_cache_seconds=0.0)) as url:
        yield url


@pytest.fixture
async def api(stripe_kassa, stripe_api) -> AsyncIterator[httpx.AsyncClient]:
    merchant = await merchants.create_merchant(stripe_kassa, name="Stripe merchant")
    async with httpx.AsyncClient(base_url=stripe_api, headers={
            "Authorization": f"Bearer {merchant['secret_key']}"}) as client:
        yield client


async def receivable(k: Kassa, *sources: str) -> int:
    """What the ledger holds at Stripe for these sources (capture, refunds), net."""
    return int(await k.pool.fetchval(
        "SELECT coalesce(sum(e.amount), 0) FROM ledger_transactions t"
        " JOIN ledger_entries e ON e.transaction_id = t.id"
        " WHERE t.source_id = ANY($1::text[]) AND e.account = 'psp:stripe:receivable'"
        " AND e.layer = 'posted'", list(sources)))


async def test_create_confirm_capture_refund_match_stripes_records(
        api, stripe_kassa, localstripe_url) -> None:
    r = await api.post("/v1/payment_intents", data={
        "amount": "2500", "currency": "eur", "payment_method": "pm_card_visa",
        "capture_method": "manual", "confirm": "true"}, headers={"Idempotency-Key": "e2e-1"})
    assert r.status_code == 200, r.text
    pi = r.json()
    assert pi["status"] == "requires_capture"

    r = await api.post(f"/v1/payment_intents/{pi['id']}/capture",
                       data={"amount_to_capture": "2000"})
    assert r.status_code == 200 and r.json()["amount_received"] == 2000, r.text
    refunds = []
    for amount in (500, 300):
        r = await api.post("/v1/refunds", data={"payment_intent": pi["id"],
                                                "amount": str(amount)})
        assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
        refunds.append(r.json()["id"])
    # a retry of the first request is kassa's replay, not a second PaymentIntent
    again = await api.post("/v1/payment_intents", data={
        "amount": "2500", "currency": "eur", "payment_method": "pm_card_visa",
        "capture_method": "manual", "confirm": "true"}, headers={"Idempotency-Key": "e2e-1"})
    assert again.json()["id"] == pi["id"]

    at_stripe = await stripe_payment(localstripe_url, pi["id"])
    assert len(at_stripe.intents) == 1
    assert (at_stripe.status, at_stripe.captured) == ("succeeded", 2000)
    assert sorted(at_stripe.refunds.values()) == [300, 500]
    kassa_refunds = await stripe_kassa.pool.fetch(
        "SELECT attempt_id, amount FROM refunds WHERE payment_intent_id = $1", pi["id"])
    assert {row["attempt_id"]: row["amount"] for row in kassa_refunds} == at_stripe.refunds
    assert await receivable(stripe_kassa, pi["id"], *refunds) == \
        at_stripe.captured - sum(at_stripe.refunds.values())
    assert (await verify(stripe_kassa.pool)).ok


async def test_cancel_releases_the_hold_at_stripe(api, stripe_kassa, localstripe_url) -> None:
    r = await api.post("/v1/payment_intents", data={
        "amount": "1200", "currency": "eur", "payment_method": "pm_card_visa",
        "capture_method": "manual", "confirm": "true"})
    pi = r.json()
    r = await api.post(f"/v1/payment_intents/{pi['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "canceled", r.text

    at_stripe = await stripe_payment(localstripe_url, pi["id"])
    assert (at_stripe.status, at_stripe.captured) == ("canceled", 0)
    held = await stripe_kassa.pool.fetchval(
        "SELECT coalesce(sum(e.amount), 0) FROM ledger_transactions t"
        " JOIN ledger_entries e ON e.transaction_id = t.id"
        " WHERE t.source_id = ANY($1::text[]) AND e.account = 'psp:stripe:receivable'",
        [pi["id"], pi["latest_charge"]])
    assert held == 0


async def send_webhooks_to_kassa(localstripe_url: str, stripe_api: str) -> None:
    """localstripe's webhook configuration: its signed events go to kassa's endpoint."""
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{localstripe_url}/_config/webhooks/kassa_e2e", data={
            "url": f"{stripe_api}/psp/stripe/webhooks", "secret": SECRET,
            "events[]": ["payment_intent.succeeded"]})
        assert r.status_code == 200, r.text


async def test_localstripes_signed_webhook_reaches_kassas_inbox(
        api, stripe_kassa, stripe_api, localstripe_url) -> None:
    await send_webhooks_to_kassa(localstripe_url, stripe_api)
    r = await api.post("/v1/payment_intents", data={
        "amount": "900", "currency": "eur", "payment_method": "pm_card_visa",
        "confirm": "true"})
    assert r.json()["status"] == "succeeded", r.text
    attempt = r.json()["latest_charge"]

    row = None
    for _ in range(100):  # localstripe delivers a second after the change
        row = await stripe_kassa.pool.fetchrow(
            "SELECT status, event FROM psp_events WHERE psp = 'stripe'"
            " AND event->>'reference' = $1", attempt)
        if row is not None:
            break
        await asyncio.sleep(0.05)
    assert row is not None, "localstripe's webhook never reached kassa"
    await psp_webhooks.apply_pending(stripe_kassa)
    status = await stripe_kassa.pool.fetchval(
        "SELECT status FROM psp_events WHERE psp = 'stripe' AND event->>'reference' = $1",
        attempt)
    assert status == "ignored"  # the confirm recorded the outcome first; nothing twice
    r = await api.get(f"/v1/payment_intents/{r.json()['id']}")
    assert r.json()["amount_received"] == 900


class RawTestCards:
    """kassa's test payment methods plus two raw cards (as the vault will hand them over),
    which the adapter turns into Stripe PaymentMethods: localstripe knows only three of
    Stripe's pm_card_* ids."""

    CARDS = {"pm_raw_3ds": Card("4000002760003184", 12, 2034, "visa", cvc="123"),
             "pm_raw_declined": Card("4000000000000341", 12, 2034, "visa", cvc="123")}

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def resolve(self, *, merchant_id: str, payment_method: str) -> Card | None:
        return (await self.lookup(merchant_id=merchant_id, payment_method=payment_method)).card

    async def lookup(self, *, merchant_id: str, payment_method: str,
                     customer: str | None = None, kept: bool = False) -> Resolved:
        raw = self.CARDS.get(payment_method)
        if raw is not None:
            return Resolved(raw)
        return await self._inner.lookup(merchant_id=merchant_id, payment_method=payment_method,
                                        customer=customer, kept=kept)


@pytest.fixture
def raw_cards(stripe_kassa) -> Iterator[None]:
    inner = stripe_kassa.payment_methods
    stripe_kassa.payment_methods = RawTestCards(inner)
    yield
    stripe_kassa.payment_methods = inner


async def test_3ds_outcome_arrives_by_localstripes_webhook(
        api, stripe_kassa, stripe_api, localstripe_url, raw_cards) -> None:
    await send_webhooks_to_kassa(localstripe_url, stripe_api)
    async with httpx.AsyncClient() as client:
        r = await api.post("/v1/payment_intents", data={
            "amount": "1500", "currency": "eur", "payment_method": "pm_raw_3ds",
            "confirm": "true", "return_url": "http://127.0.0.1:9/shop/done"})
        assert r.status_code == 200 and r.json()["status"] == "requires_action", r.text
        pi = r.json()
        (intent,) = (await stripe_payment(localstripe_url, pi["id"])).intents
        # the customer authenticates at "Stripe" (localstripe's stand-in for the page)
        r = await client.post(f"{localstripe_url}/v1/payment_intents/{intent.id}/_authenticate",
                              data={"client_secret": intent.client_secret, "success": "true",
                                    "key": "pk_test_e2e"})
        assert r.status_code == 200, r.text

    status = None
    for _ in range(100):  # localstripe delivers a second after the change
        await psp_webhooks.apply_pending(stripe_kassa)
        status = await stripe_kassa.pool.fetchval(
            "SELECT status FROM psp_events WHERE psp = 'stripe'"
            " AND event->>'reference' = $1", pi["latest_charge"])
        if status is not None and status != "pending":
            break
        await asyncio.sleep(0.05)
    assert status == "applied"
    done = (await api.get(f"/v1/payment_intents/{pi['id']}")).json()
    assert (done["status"], done["amount_received"]) == ("succeeded", 1500)
    at_stripe = await stripe_payment(localstripe_url, pi["id"])
    assert (at_stripe.status, at_stripe.captured) == ("succeeded", 1500)
    assert await receivable(stripe_kassa, pi["id"]) == 1500


async def test_a_decline_at_stripe_is_a_402_with_its_code(api, raw_cards) -> None:
    r = await api.post("/v1/payment_intents", data={
        "amount": "700", "currency": "eur", "payment_method": "pm_raw_declined",
        "confirm": "true"})

    assert r.status_code == 402, r.text
    error = r.json()["error"]
    assert (error["type"], error["code"], error["decline_code"]) == (
        "card_error", "card_declined", "generic_decline")
    assert error["payment_intent"]["status"] == "requires_payment_method"
