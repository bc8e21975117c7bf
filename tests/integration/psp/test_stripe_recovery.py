"""Resolve after a crash, at Stripe: an answer lost after Stripe acted is found again by
kassa's ids in Stripe's metadata (never a second PaymentIntent or refund); a call Stripe
never acted on is repeated with the same key. Against localstripe, faults on the wire."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from kassa import bootstrap
from kassa.ledger.verify import verify
from kassa.psp.stripe import StripeSettings
from kassa.services import payments, recovery, refunds
from kassa.services.context import Kassa
from tests.support.localstripe_records import stripe_payment
from tests.support.localstripe_server import API_KEY
from tests.support.psp_faults import ERROR, TIMEOUT_AFTER_CHARGE, PSPWireFaults


@pytest.fixture
async def wire() -> PSPWireFaults:
    return PSPWireFaults()


@pytest.fixture
async def stripe_kassa(settings, dsn, localstripe_url, wire) -> AsyncIterator[Kassa]:
    async with httpx.AsyncClient(transport=wire) as client:
        k, close = await bootstrap.build(
            settings.model_copy(update={"default_psp": "stripe"}), dsn, pool_size=4,
            http=client, stripe=StripeSettings(secret_key=API_KEY, api_base=localstripe_url,
                                               localstripe=True))
        k.recovery_after_seconds = 0.0
        try:
            yield k
        finally:
            await close()


async def test_confirm_whose_answer_was_lost_is_found_at_stripe(
        stripe_kassa, merchant, wire, localstripe_url) -> None:
    mid = merchant["merchant_id"]
    pi = await payments.create(stripe_kassa, merchant_id=mid, amount=4200, currency="eur",
                               payment_method="pm_card_visa")
    wire.enqueue(TIMEOUT_AFTER_CHARGE)

    got = await payments.confirm(stripe_kassa, merchant_id=mid, payment_id=pi["id"])

    assert got["status"] == "processing"  # Stripe charged; kassa did not hear it
    assert await recovery.recover_open_attempts(stripe_kassa) == 1
    done = await payments.retrieve(stripe_kassa, merchant_id=mid, payment_id=pi["id"])
    assert (done["status"], done["amount_received"]) == ("succeeded", 4200)
    at_stripe = await stripe_payment(localstripe_url, pi["id"])
    assert (len(at_stripe.intents), at_stripe.captured) == (1, 4200)
    assert await recovery.recover_open_attempts(stripe_kassa) == 0
    assert (await verify(stripe_kassa.pool)).ok


async def test_confirm_stripe_never_acted_on_is_repeated_once(
        stripe_kassa, merchant, wire, localstripe_url) -> None:
    mid = merchant["merchant_id"]
    pi = await payments.create(stripe_kassa, merchant_id=mid, amount=1300, currency="eur",
                               payment_method="pm_card_visa", capture_method="manual")
    wire.enqueue(ERROR)

    got = await payments.confirm(stripe_kassa, merchant_id=mid, payment_id=pi["id"])

    assert got["status"] == "processing"
    assert await recovery.recover_open_attempts(stripe_kassa) == 1
    done = await payments.retrieve(stripe_kassa, merchant_id=mid, payment_id=pi["id"])
    assert done["status"] == "requires_capture"
    at_stripe = await stripe_payment(localstripe_url, pi["id"])
    assert (len(at_stripe.intents), at_stripe.status) == (1, "requires_capture")


async def test_capture_and_refund_whose_answers_were_lost(
        stripe_kassa, merchant, wire, localstripe_url) -> None:
    mid = merchant["merchant_id"]
    pi = await payments.create(stripe_kassa, merchant_id=mid, amount=3000, currency="eur",
                               payment_method="pm_card_visa", capture_method="manual",
                               confirm=True)
    assert pi["status"] == "requires_capture"

    async def answer_lost(call: Any, waiting: str) -> None:
        wire.enqueue(TIMEOUT_AFTER_CHARGE)
        assert (await call)["status"] == waiting
        await recovery.recover_open_attempts(stripe_kassa)

    await answer_lost(payments.capture(stripe_kassa, merchant_id=mid, payment_id=pi["id"],
                                       amount_to_capture=2500), "processing")
    done = await payments.retrieve(stripe_kassa, merchant_id=mid, payment_id=pi["id"])
    assert (done["status"], done["amount_received"]) == ("succeeded", 2500)
    await answer_lost(refunds.create(stripe_kassa, merchant_id=mid, payment_intent=pi["id"],
                                     amount=700), "pending")
    (settled,), _ = await refunds.list_(stripe_kassa, merchant_id=mid, limit=1,
                                        starting_after=None, ending_before=None,
                                        payment_intent=pi["id"])
    assert settled["status"] == "succeeded"

    at_stripe = await stripe_payment(localstripe_url, pi["id"])
    assert at_stripe.captured == 2500
    assert list(at_stripe.refunds.values()) == [700]  # once, though its answer was lost
    assert (await verify(stripe_kassa.pool)).ok
