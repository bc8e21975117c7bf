"""Each PSP's test setup for the contract suite: the adapter against a real server on
loopback, and the few PSP-specific hooks the suite needs (its cards, its own records,
fault injection, a genuine webhook). A PSP joins by adding a harness to ``HARNESSES``.

What a test server cannot do like the PSP itself is a declared capability
(``replays_keys``, ``gives_action_url``); the suite runs those tests only where they
hold, and psp/stripe/README.md with tests/unit/psp/test_stripe_recorded.py cover the
difference for Stripe.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import httpx
import orjson
import pytest
import stripe

from kassa.domain.money import Money
from kassa.psp.base import AuthorizeRequest, Card, PSPAdapter, PSPResult
from kassa.psp.simulator import SimulatorAdapter, signature
from kassa.psp.stripe import StripeAdapter, StripeSettings
from kassa.psp.stripe.mapping import ATTEMPT_KEY, field
from kassa.psp.stripe.transport import InjectedHTTPXClient
from kassa.vault.test_cards import TEST_PAYMENT_METHODS
from tests.support.localstripe_server import API_KEY
from tests.support.psp_faults import PSPWireFaults

WEBHOOK_SECRET = "whsec_contract"
EUR_10 = Money(1000, "eur")


@dataclass(frozen=True)
class Method:
    """A payment method as kassa hands it to an adapter: the card, and kassa's id of it."""

    card: Card
    payment_method: str | None = None


class Record(NamedTuple):
    """One authorisation as the PSP itself records it."""

    state: str  # authorized | captured | voided | requires_action | declined
    captured: int
    refunded: int


class PSPHarness(Protocol):
    name: str
    replays_keys: bool  # a repeat with the same key is answered from the PSP's store
    gives_action_url: bool  # 3-D Secure comes with a page the customer is sent to
    visa: Method
    three_ds: Method
    declines: list[tuple[Method, str]]  # (method, the decline_code it gets)

    def adapter(self, *, timeout: float = 5.0, base_url: str | None = None) -> PSPAdapter:
        ...

    async def record(self, psp_reference: str) -> Record: ...

    async def authorizations_with_key(self, idempotency_key: str) -> int: ...

    async def inject_fault(self, fault: str, *, hang_s: float = 0.0) -> None:
        """The next mutating call fails: ``error`` (5xx, nothing done) or
        ``timeout_after_charge`` (acted, no answer within the adapter's timeout)."""
        ...

    async def complete_authentication(self, result: PSPResult, *, succeed: bool) -> None:
        ...

    async def dispute_webhook(self, adapter: PSPAdapter) -> tuple[dict[str, str], bytes]:
        """Headers and raw body of the webhook the PSP sends when a captured payment of
        EUR_10 made through ``adapter`` is disputed."""
        ...


def key() -> str:
    return f"att_{uuid.uuid4().hex}"


def authorize_request(method: Method, *, capture: bool, amount: Money = EUR_10,
                      idempotency_key: str | None = None) -> AuthorizeRequest:
    return AuthorizeRequest(idempotency_key=idempotency_key or key(), amount=amount,
                            card=method.card, capture=capture, merchant_id="mer_contract",
                            description="contract test", payment_id="pi_contract",
                            payment_method=method.payment_method)


def _method(pm_id: str) -> Method:
    return Method(TEST_PAYMENT_METHODS[pm_id], pm_id)


class SimulatorHarness:
    name = "simulator"
    replays_keys = True
    gives_action_url = True
    visa = _method("pm_card_visa")
    three_ds = _method("pm_card_authenticationRequired")
    declines = [(_method(pm), code) for pm, code in (
        ("pm_card_chargeDeclined", "generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
        ("pm_card_chargeDeclinedLostCard", "lost_card"),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card"))]

    def __init__(self, client: httpx.AsyncClient, base_url: str) -> None:
        self._client = client
        self._base_url = base_url

    def adapter(self, *, timeout: float = 5.0, base_url: str | None = None) -> PSPAdapter:
        return SimulatorAdapter(self._client, base_url or self._base_url, timeout=timeout,
                                webhook_secrets=[WEBHOOK_SECRET])

    async def _authorizations(self) -> list[dict[str, Any]]:
        listed = (await self._client.get(f"{self._base_url}/_sim/authorizations")).json()
        return listed["data"] if isinstance(listed, dict) else listed

    async def record(self, psp_reference: str) -> Record:
        (auth,) = [a for a in await self._authorizations() if a["id"] == psp_reference]
        return Record(auth["status"], auth["amount_captured"], auth["amount_refunded"])

    async def authorizations_with_key(self, idempotency_key: str) -> int:
        return sum(1 for a in await self._authorizations()
                   if a["idempotency_key"] == idempotency_key)

    async def inject_fault(self, fault: str, *, hang_s: float = 0.0) -> None:
        await self._client.post(f"{self._base_url}/_sim/config", json={"timeout_hang_s": hang_s})
        await self._client.post(f"{self._base_url}/_sim/faults", json={"faults": [fault]})

    async def complete_authentication(self, result: PSPResult, *, succeed: bool) -> None:
        assert result.action_url
        r = await self._client.post(f"{result.action_url}/complete",
                                    json={"result": "succeed" if succeed else "fail"})
        assert r.status_code == 200, r.text

    async def dispute_webhook(self, adapter: PSPAdapter) -> tuple[dict[str, str], bytes]:
        card = TEST_PAYMENT_METHODS["pm_card_createDispute"]
        await adapter.authorize(authorize_request(Method(card), capture=True))
        # the simulator holds its events; this is the body and header it would POST
        (event,) = (await self._client.get(f"{self._base_url}/_sim/webhooks")).json()
        body = orjson.dumps({k: event[k] for k in ("id", "object", "type", "created",
                                                    "sequence", "data")})
        return {signature.HEADER: signature.header(WEBHOOK_SECRET, int(time.time()), body)}, body


class LocalstripeHarness:
    """Stripe's adapter against localstripe. localstripe ignores Idempotency-Key and sends
    no 3-D Secure page; its test cards are few (psp/stripe/README.md)."""

    name = "stripe"
    replays_keys = False
    gives_action_url = False
    visa = _method("pm_card_visa")  # a Stripe test token: passed through as it is
    # raw card numbers become a PaymentMethod first (localstripe wants a CVC)
    three_ds = Method(Card("4000002760003184", 12, 2034, "visa", cvc="123"))
    declines = [
        (Method(Card("4000000000000341", 12, 2034, "visa", cvc="123")), "generic_decline"),
        (Method(TEST_PAYMENT_METHODS["pm_card_visa"], "pm_card_chargeCustomerFail"),
         "generic_decline"),
    ]

    def __init__(self, base_url: str, wire: PSPWireFaults, client: httpx.AsyncClient,
                 inspector: httpx.AsyncClient) -> None:
        self._base_url = base_url
        self._wire = wire
        self._client = client
        self._inspector = inspector
        self.sdk = stripe.StripeClient(API_KEY, base_addresses={"api": base_url},
                                       http_client=InjectedHTTPXClient(inspector, timeout=10),
                                       max_network_retries=0).v1

    def adapter(self, *, timeout: float = 5.0, base_url: str | None = None) -> PSPAdapter:
        return StripeAdapter(self._client, stripe_settings(base_url or self._base_url),
                             timeout=timeout)

    async def record(self, psp_reference: str) -> Record:
        pi = await self.sdk.payment_intents.retrieve_async(psp_reference)
        state = {"requires_capture": "authorized", "succeeded": "captured",
                 "canceled": "voided", "requires_action": "requires_action",
                 "requires_payment_method": "declined"}[pi.status]
        refunds = (await self.sdk.refunds.list_async({"payment_intent": psp_reference,
                                                      "limit": 100})).data
        ours = sum(r.amount for r in refunds if field(r.metadata, ATTEMPT_KEY))
        captured = 0
        if state == "captured":
            # localstripe releases an uncaptured remainder as a refund of its own (no
            # kassa metadata) and has no amount_received: what stayed captured is the
            # charge less that release
            released = sum(r.amount for r in refunds if not field(r.metadata, ATTEMPT_KEY))
            captured = pi.latest_charge["amount"] - released
        return Record(state, captured, ours)

    async def authorizations_with_key(self, idempotency_key: str) -> int:
        listed = await self.sdk.payment_intents.list_async({"limit": 100})
        found = 0
        async for pi in listed.auto_paging_iter():
            found += field(pi.metadata, ATTEMPT_KEY) == idempotency_key
        return found

    async def inject_fault(self, fault: str, *, hang_s: float = 0.0) -> None:
        self._wire.enqueue(fault)

    async def complete_authentication(self, result: PSPResult, *, succeed: bool) -> None:
        pi = await self.sdk.payment_intents.retrieve_async(result.psp_reference)
        # localstripe's stand-in for the customer's 3-D Secure page
        r = await self._inspector.post(
            f"{self._base_url}/v1/payment_intents/{pi.id}/_authenticate",
            data={"client_secret": pi.client_secret, "success": str(succeed).lower(),
                  "key": "pk_test_contract"})
        assert r.status_code == 200, r.text

    async def dispute_webhook(self, adapter: PSPAdapter) -> tuple[dict[str, str], bytes]:
        result = await adapter.authorize(authorize_request(self.visa, capture=True))
        pi = await self.sdk.payment_intents.retrieve_async(result.psp_reference)
        body = dispute_event(pi.id, charge=pi.latest_charge["id"], amount=EUR_10)
        return sign(body), body


def stripe_settings(base_url: str) -> StripeSettings:
    return StripeSettings(secret_key=API_KEY, api_base=base_url, localstripe=True,
                          webhook_secret=WEBHOOK_SECRET)


def sign(body: bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None
         ) -> dict[str, str]:
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), secret,
                                                               timestamp or int(time.time()))
    return {"Stripe-Signature": header}


def dispute_event(payment_intent: str, *, charge: str, amount: Money,
                  type_: str = "charge.dispute.created", status: str = "needs_response"
                  ) -> bytes:
    """A ``charge.dispute.*`` event as Stripe sends it (the Event and Dispute objects of
    Stripe's API reference; localstripe has no disputes)."""
    now = int(time.time())
    return orjson.dumps({
        "id": f"evt_{uuid.uuid4().hex[:24]}", "object": "event", "api_version": "2026-10-28",
        "created": now, "livemode": False, "pending_webhooks": 1, "type": type_,
        "request": {"id": None, "idempotency_key": None},
        "data": {"object": {
            "id": f"dp_{payment_intent[3:]}", "object": "dispute", "amount": amount.minor,
            "currency": amount.currency, "charge": charge, "payment_intent": payment_intent,
            "reason": "fraudulent", "status": status, "created": now, "livemode": False,
            "is_charge_refundable": False, "metadata": {}, "balance_transactions": [],
            "evidence_details": {"due_by": now + 7 * 86400, "has_evidence": False,
                                 "past_due": False, "submission_count": 0}}}})


@asynccontextmanager
async def simulator_harness(request: pytest.FixtureRequest) -> AsyncIterator[PSPHarness]:
    base_url = request.getfixturevalue("contract_simulator_url")
    async with httpx.AsyncClient() as client:
        await client.post(f"{base_url}/_sim/reset")
        yield SimulatorHarness(client, base_url)


@asynccontextmanager
async def localstripe_harness(request: pytest.FixtureRequest) -> AsyncIterator[PSPHarness]:
    base_url = request.getfixturevalue("localstripe_url")
    wire = PSPWireFaults()
    async with httpx.AsyncClient(transport=wire) as client, httpx.AsyncClient() as inspector:
        yield LocalstripeHarness(base_url, wire, client, inspector)


# Adyen (the simulator's Adyen dialect) joins here.
HARNESSES: dict[str, Callable[[pytest.FixtureRequest],
                              AbstractAsyncContextManager[PSPHarness]]] = {
    "simulator": simulator_harness,
    "stripe": localstripe_harness,
}
# the PSPs whose test server answers a repeated key from its store, as the PSP does
KEY_REPLAYING = sorted(name for name, cls in (("simulator", SimulatorHarness),
                                              ("stripe", LocalstripeHarness))
                       if cls.replays_keys)
