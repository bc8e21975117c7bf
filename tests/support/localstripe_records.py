"""What localstripe itself recorded for a kassa payment, read through Stripe's SDK."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import stripe

from kassa.psp.stripe.mapping import ATTEMPT_KEY, PAYMENT_KEY, field
from kassa.psp.stripe.transport import InjectedHTTPXClient
from tests.support.localstripe_server import API_KEY


@dataclass(frozen=True)
class StripePayment:
    intents: list[Any]  # every PaymentIntent carrying kassa's payment id
    status: str
    captured: int  # the charge less what localstripe released as a "refund" at capture
    refunds: dict[str, int]  # kassa's refunds: attempt id -> amount


def sdk(base_url: str, client: httpx.AsyncClient) -> Any:
    return stripe.StripeClient(API_KEY, base_addresses={"api": base_url},
                               http_client=InjectedHTTPXClient(client, timeout=10),
                               max_network_retries=0).v1


async def stripe_payment(base_url: str, payment_id: str) -> StripePayment:
    async with httpx.AsyncClient() as client:
        return await _read(sdk(base_url, client), payment_id)


async def _read(v1: Any, payment_id: str) -> StripePayment:
    intents = []
    async for pi in (await v1.payment_intents.list_async({"limit": 100})).auto_paging_iter():
        if field(pi.metadata, PAYMENT_KEY) == payment_id:
            intents.append(pi)
    assert intents, f"no PaymentIntent at localstripe for {payment_id}"
    pi = intents[0]
    refunds = []
    if pi.latest_charge is not None:  # (localstripe fails to list refunds of no charge)
        refunds = (await v1.refunds.list_async({"payment_intent": pi.id, "limit": 100})).data
    ours = {field(r.metadata, ATTEMPT_KEY): r.amount for r in refunds
            if field(r.metadata, ATTEMPT_KEY)}
    released = sum(r.amount for r in refunds if not field(r.metadata, ATTEMPT_KEY))
    captured = pi.latest_charge["amount"] - released if pi.status == "succeeded" else 0
    return StripePayment(intents, pi.status, captured, ours)
