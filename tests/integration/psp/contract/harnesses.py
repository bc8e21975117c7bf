"""Each PSP's test setup for the contract suite: the adapter against a real server on
loopback, and the few PSP-specific hooks the suite needs (its cards, its own records,
fault injection, a genuine webhook). A PSP joins by adding a harness to ``HARNESSES``.

What a test server cannot do like the PSP itself is a declared capability
(``replays_keys``, ``gives_action_url``); the suite runs those tests only where they
hold, and psp/stripe/README.md with tests/unit/psp/test_stripe_recorded.py cover the
difference for Stripe. What a PSP does differently by design is a capability too:
Adyen reads nothing back (``resolves_by_repeating``: recovery repeats the call with its
key), answers modifications ``received`` (``settled`` reads the notification that
settles them) and signs no timestamp (``signs_time``: a replay is a duplicate event).
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
from kassa.psp.adyen import AdyenAdapter, AdyenSettings
from kassa.psp.base import (
    AuthorizeRequest,
    Card,
    Outcome,
    PSPAdapter,
    PSPEventType,
    PSPResult,
)
from kassa.psp.simulator import SimulatorAdapter, signature
from kassa.psp.stripe import StripeAdapter, StripeSettings
from kassa.psp.stripe.mapping import ATTEMPT_KEY, field
from kassa.psp.stripe.transport import InjectedHTTPXClient
from kassa.vault.test_cards import TEST_PAYMENT_METHODS
from tests.support.localstripe_server import API_KEY
from tests.support.psp_faults import PSPWireFaults

WEBHOOK_SECRET = "whsec_contract"
EUR_10 = Money(1000, "eur")
ADYEN_API_KEY = "AQE_contract_key"
ADYEN_ACCOUNT = "KassaContractECOM"
ADYEN_HMAC_KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"


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
    resolves_by_repeating: bool  # lookup finds nothing: the call is repeated with its key
    signs_time: bool  # the webhook signature covers a timestamp (a late replay is refused)
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

    def unsigned(self, headers: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
        """The same webhook without its signature."""
        ...

    async def settled(self, adapter: PSPAdapter, result: PSPResult, key: str) -> PSPResult:
        """The final result of a call answered pending (by the PSP's own notification);
        any other result as it is."""
        ...

    async def authentication_outcome(self, adapter: PSPAdapter, result: PSPResult,
                                     idempotency_key: str, *, capture: bool) -> PSPResult:
        """How the authorisation ``result`` (requires_action) ended after the customer
        authenticated, as kassa learns it when the customer comes back."""
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


class SyncResults:
    """A PSP whose calls answer their final result and which kassa can ask again."""

    resolves_by_repeating = False
    signs_time = True

    def unsigned(self, headers: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
        return {}, body

    async def settled(self, adapter: PSPAdapter, result: PSPResult, key: str) -> PSPResult:
        return result

    async def authentication_outcome(self, adapter: PSPAdapter, result: PSPResult,
                                     idempotency_key: str, *, capture: bool) -> PSPResult:
        from kassa.domain.payments import Operation
        from kassa.psp.base import AttemptRef

        return await adapter.lookup(AttemptRef(
            operation=Operation.AUTHORIZE, idempotency_key=idempotency_key, amount=EUR_10,
            merchant_id="mer_contract", payment_id="pi_contract",
            psp_reference=result.psp_reference, created=int(time.time())))


class SimulatorHarness(SyncResults):
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


class LocalstripeHarness(SyncResults):
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


class AdyenHarness:
    """Adyen's adapter against the simulator's Adyen dialect (same books as the simulator's
    own API, Adyen's shapes). Its own records are read through the dialect's
    /_sim/adyen/payments/{pspReference}; its notifications are held and read back."""

    name = "adyen"
    replays_keys = True
    gives_action_url = True
    resolves_by_repeating = True
    signs_time = False
    visa = SimulatorHarness.visa
    three_ds = SimulatorHarness.three_ds
    declines = SimulatorHarness.declines

    def __init__(self, client: httpx.AsyncClient, base_url: str) -> None:
        self._client = client
        self._base_url = base_url
        self._returns: dict[str, str] = {}  # pspReference → where the shopper came back

    def adapter(self, *, timeout: float = 5.0, base_url: str | None = None) -> PSPAdapter:
        return AdyenAdapter(self._client, adyen_settings(base_url or self._base_url),
                            timeout=timeout)

    async def record(self, psp_reference: str) -> Record:
        r = await self._client.get(f"{self._base_url}/_sim/adyen/payments/{psp_reference}")
        assert r.status_code == 200, r.text
        auth = r.json()
        return Record(auth["status"], auth["amount_captured"], auth["amount_refunded"])

    async def authorizations_with_key(self, idempotency_key: str) -> int:
        listed = (await self._client.get(f"{self._base_url}/_sim/authorizations")).json()
        rows = listed["data"] if isinstance(listed, dict) else listed
        return sum(1 for a in rows
                   if a["idempotency_key"] == f"adyen:{ADYEN_ACCOUNT}:{idempotency_key}")

    async def inject_fault(self, fault: str, *, hang_s: float = 0.0) -> None:
        await self._client.post(f"{self._base_url}/_sim/config", json={"timeout_hang_s": hang_s})
        await self._client.post(f"{self._base_url}/_sim/faults", json={"faults": [fault]})

    async def complete_authentication(self, result: PSPResult, *, succeed: bool) -> None:
        assert result.action_url
        r = await self._client.post(f"{result.action_url}/complete",
                                    data={"result": "succeed" if succeed else "fail"})
        assert r.status_code == 303, r.text
        self._returns[result.psp_reference] = r.headers["location"]

    async def authentication_outcome(self, adapter: PSPAdapter, result: PSPResult,
                                     idempotency_key: str, *, capture: bool) -> PSPResult:
        """The shopper's return carries redirectResult: /payments/details tells the outcome,
        and the AUTHORISATION notification says the same (a success is AUTHORIZED there:
        captured or not is kassa's own attempt's ``capture``, applied by webhooks/inbound.py)."""
        assert isinstance(adapter, AdyenAdapter)
        query = httpx.URL(self._returns[result.psp_reference]).params
        outcome = await adapter.complete_redirect(
            idempotency_key=idempotency_key, redirect_result=query["redirectResult"],
            capture=capture)
        (event,) = await self._events(adapter, "AUTHORISATION", idempotency_key)
        expected = Outcome.AUTHORIZED if outcome.outcome in (
            Outcome.CAPTURED, Outcome.AUTHORIZED) else outcome.outcome
        assert event.outcome is expected
        return outcome

    async def _notifications(self) -> list[bytes]:
        events = (await self._client.get(f"{self._base_url}/_sim/webhooks")).json()
        return [orjson.dumps({"live": e["live"], "notificationItems": e["notificationItems"]})
                for e in events if "notificationItems" in e]

    async def _events(self, adapter: PSPAdapter, code: str, reference: str) -> list[Any]:
        """The verified events of the held notifications of ``code`` about ``reference``."""
        found = []
        for body in await self._notifications():
            items = orjson.loads(body)["notificationItems"]
            item = items[0]["NotificationRequestItem"]
            if item["eventCode"] == code and item.get("merchantReference") == reference:
                found.extend(await adapter.parse_webhook(headers={}, body=body,
                                                         now=int(time.time())))
        return found

    async def settled(self, adapter: PSPAdapter, result: PSPResult, key: str) -> PSPResult:
        codes = {Outcome.CAPTURE_PENDING: ("CAPTURE", "CAPTURE_FAILED"),
                 Outcome.VOID_PENDING: ("CANCELLATION",),
                 Outcome.REFUND_PENDING: ("REFUND", "REFUND_FAILED")}.get(result.outcome)
        if codes is None:
            return result
        events = [e for code in codes for e in await self._events(adapter, code, key)]
        assert len({e.event_id for e in events}) == 1, events
        event = events[0]
        outcome = {PSPEventType.CAPTURE_SUCCEEDED: Outcome.CAPTURED,
                   PSPEventType.VOID_SUCCEEDED: Outcome.VOIDED,
                   PSPEventType.REFUND_SUCCEEDED: Outcome.REFUNDED}.get(event.type,
                                                                       Outcome.FAILED)
        assert event.psp_reference == result.psp_reference
        return PSPResult(outcome, event.operation_reference, amount=event.amount,
                         decline_code=event.failure_code, message=event.message)

    async def dispute_webhook(self, adapter: PSPAdapter) -> tuple[dict[str, str], bytes]:
        card = TEST_PAYMENT_METHODS["pm_card_createDispute"]
        request = authorize_request(Method(card), capture=True)
        await adapter.authorize(request)
        for body in await self._notifications():
            item = orjson.loads(body)["notificationItems"][0]["NotificationRequestItem"]
            if item["eventCode"] == "CHARGEBACK" and \
                    item["merchantReference"] == request.idempotency_key:
                return {}, body
        raise AssertionError("no CHARGEBACK notification was sent")

    def unsigned(self, headers: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
        payload = orjson.loads(body)
        for wrapped in payload["notificationItems"]:
            wrapped["NotificationRequestItem"]["additionalData"].pop("hmacSignature")
        return headers, orjson.dumps(payload)


def adyen_settings(base_url: str, *, hmac_keys: str = ADYEN_HMAC_KEY) -> AdyenSettings:
    return AdyenSettings(api_key=ADYEN_API_KEY, merchant_account=ADYEN_ACCOUNT,
                         checkout_url=f"{base_url}/v71",
                         disputes_url=f"{base_url}/ca/services/DisputeService/v30",
                         hmac_keys=hmac_keys)


@asynccontextmanager
async def adyen_harness(request: pytest.FixtureRequest) -> AsyncIterator[PSPHarness]:
    base_url = request.getfixturevalue("contract_simulator_url")
    async with httpx.AsyncClient() as client:
        await client.post(f"{base_url}/_sim/reset")
        yield AdyenHarness(client, base_url)


HARNESSES: dict[str, Callable[[pytest.FixtureRequest],
                              AbstractAsyncContextManager[PSPHarness]]] = {
    "simulator": simulator_harness,
    "stripe": localstripe_harness,
    "adyen": adyen_harness,
}
# the PSPs whose test server answers a repeated key from its store, as the PSP does
KEY_REPLAYING = sorted(name for name, cls in (("simulator", SimulatorHarness),
                                              ("stripe", LocalstripeHarness),
                                              ("adyen", AdyenHarness))
                       if cls.replays_keys)
