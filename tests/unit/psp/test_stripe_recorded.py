"""The Stripe adapter against recorded Stripe answers (tests/unit/psp/fixtures/
stripe_recorded.json, in the shapes of Stripe's API reference), for what localstripe does
not do as Stripe does (psp/stripe/README.md): Idempotency-Key replays and conflicts,
amount_received after a partial capture, latest_charge as an id, decline codes,
3-D Secure's redirect, the error classes, and webhook events localstripe never sends.
The network is an httpx.MockTransport standing in for api.stripe.com."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import httpx
import orjson
import pytest
import stripe

from kassa.domain.disputes import DisputeStatus
from kassa.domain.money import Money
from kassa.domain.payments import Operation
from kassa.psp.base import (
    AttemptRef,
    AuthorizeRequest,
    Outcome,
    PSPEventType,
    PSPOutcomeUnknown,
    PSPRefused,
    PSPTimeout,
    PSPUnavailable,
    UnknownOperation,
    WebhookRejected,
)
from kassa.psp.stripe import StripeAdapter, StripeSettings
from kassa.vault.test_cards import TEST_PAYMENT_METHODS

RECORDED: dict[str, Any] = json.loads(
    (Path(__file__).parent / "fixtures" / "stripe_recorded.json").read_text())
SECRET = "whsec_recorded"
PI_ID = "pi_3QrecAuthLueXt1u"
EUR_25 = Money(2500, "eur")


class RecordedStripe:
    """api.stripe.com as recorded: each (method, path) answers its queued responses in
    order (the last one again once the queue is down to one); a POST seen before under the
    same Idempotency-Key is answered as the first time, as Stripe does."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], list[tuple[int, Any]]] = {}
        self.requests: list[httpx.Request] = []
        self.replays: dict[str, tuple[int, bytes]] = {}
        self.raise_: Exception | None = None

    def on(self, method: str, path: str, *answers: Any) -> None:
        self.answers[(method, path)] = [
            (a["status"], a["body"]) if "body" in a else (200, a) for a in answers]

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.raise_ is not None:
            raise self.raise_
        key = request.headers.get("idempotency-key")
        if request.method == "POST" and key in self.replays:
            status, body = self.replays[key]
            return httpx.Response(status, content=body,
                                  headers={"Idempotent-Replayed": "true",
                                           "content-type": "application/json"})
        queue = self.answers[(request.method, request.url.path)]
        status, body = queue.pop(0) if len(queue) > 1 else queue[0]
        content = orjson.dumps(body)
        if request.method == "POST" and key:
            self.replays[key] = (status, content)
        return httpx.Response(status, content=content,
                              headers={"content-type": "application/json",
                                       "request-id": "req_recorded"})

    def form(self, index: int = -1) -> dict[str, list[str]]:
        return parse_qs(self.requests[index].content.decode())


@pytest.fixture
async def recorded() -> Any:
    server = RecordedStripe()
    async with httpx.AsyncClient(transport=httpx.MockTransport(server.handle)) as client:
        adapter = StripeAdapter(client, StripeSettings(
            secret_key="sk_test_recorded", webhook_secret=SECRET), timeout=2.0)
        yield server, adapter


def request(key: str = "ch_attempt_auth", *, capture: bool = False,
            pm: str = "pm_card_visa") -> AuthorizeRequest:
    return AuthorizeRequest(idempotency_key=key, amount=EUR_25,
                            card=TEST_PAYMENT_METHODS[pm], capture=capture,
                            merchant_id="mer_1", payment_id="pi_kassa_1", payment_method=pm,
                            description="order 1",
                            return_url="http://127.0.0.1:8000/psp/stripe/return/" + key)


def ref(operation: Operation, key: str, psp_reference: str | None = PI_ID) -> AttemptRef:
    return AttemptRef(operation=operation, idempotency_key=key, amount=EUR_25,
                      merchant_id="mer_1", payment_id="pi_kassa_1",
                      psp_reference=psp_reference, created=1764675000)


async def test_authorize_sends_one_idempotent_create_with_kassa_ids(recorded) -> None:
    server, adapter = recorded
    server.on("POST", "/v1/payment_intents", RECORDED["payment_intent_requires_capture"])

    result = await adapter.authorize(request())

    assert (result.outcome, result.psp_reference, result.amount) == (
        Outcome.AUTHORIZED, PI_ID, EUR_25)
    (sent,) = server.requests
    assert sent.headers["idempotency-key"] == "ch_attempt_auth"
    form = server.form()
    assert form["payment_method"] == ["pm_card_visa"]  # Stripe's test token, passed through
    assert form["confirm"] == ["true"] and form["capture_method"] == ["manual"]
    assert form["metadata[kassa_attempt]"] == ["ch_attempt_auth"]
    assert form["metadata[kassa_payment]"] == ["pi_kassa_1"]
    assert form["metadata[kassa_merchant]"] == ["mer_1"]
    assert form["return_url"] == ["http://127.0.0.1:8000/psp/stripe/return/ch_attempt_auth"]


async def test_a_raw_card_becomes_a_payment_method_under_a_derived_key(recorded) -> None:
    server, adapter = recorded
    server.on("POST", "/v1/payment_methods", {"id": "pm_1QrecCard", "object": "payment_method",
                                               "type": "card"})
    server.on("POST", "/v1/payment_intents", RECORDED["payment_intent_requires_capture"])
    raw = AuthorizeRequest(idempotency_key="ch_attempt_auth", amount=EUR_25,
                           card=TEST_PAYMENT_METHODS["pm_card_visa"], capture=False,
                           merchant_id="mer_1")

    await adapter.authorize(raw)

    pm_call, pi_call = server.requests
    assert pm_call.url.path == "/v1/payment_methods"
    assert pm_call.headers["idempotency-key"] == "ch_attempt_auth-pm"
    assert parse_qs(pm_call.content.decode())["card[number]"] == ["4242424242424242"]
    assert parse_qs(pi_call.content.decode())["payment_method"] == ["pm_1QrecCard"]
    assert pi_call.headers["idempotency-key"] == "ch_attempt_auth"


async def test_a_repeat_under_the_same_key_is_stripes_replay(recorded) -> None:
    """localstripe ignores Idempotency-Key; Stripe answers a repeat from its store."""
    server, adapter = recorded
    server.on("POST", "/v1/payment_intents", RECORDED["payment_intent_requires_capture"],
              RECORDED["error_api"])  # a second execution would fail: it never happens

    first = await adapter.authorize(request())
    second = await adapter.authorize(request())

    assert first == second
    assert [r.headers["idempotency-key"] for r in server.requests] == ["ch_attempt_auth"] * 2


async def test_a_replayed_decline_stays_a_decline(recorded) -> None:
    server, adapter = recorded
    server.on("POST", "/v1/payment_intents", RECORDED["error_card_declined_insufficient_funds"])

    first = await adapter.authorize(request("ch_attempt_declined"))
    again = await adapter.authorize(request("ch_attempt_declined"))

    assert first == again
    assert (first.outcome, first.decline_code, first.psp_reference) == (
        Outcome.DECLINED, "insufficient_funds", "pi_3QrecDeclined")
    assert first.message == "Your card has insufficient funds."


@pytest.mark.parametrize(("answer", "error"), [
    ("error_idempotency_parameters", PSPOutcomeUnknown),  # the key is Stripe's already
    ("error_idempotency_in_progress", PSPOutcomeUnknown),  # 409: the first still runs
    ("error_api", PSPOutcomeUnknown),  # 500: may have been processed
    ("error_lock_timeout", PSPUnavailable),  # 429: refused before acting
    ("error_amount_too_large", PSPRefused),
])
async def test_error_classes(recorded, answer: str, error: type[Exception]) -> None:
    server, adapter = recorded
    server.on("POST", "/v1/refunds", RECORDED[answer])

    with pytest.raises(error) as caught:
        await adapter.refund(idempotency_key="re_attempt_1", psp_reference=PI_ID,
                             amount=Money(3000, "eur"))

    assert type(caught.value) is error


def _from_aiohttp(exc: httpx.TransportError, cause: BaseException) -> httpx.TransportError:
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize(("raised", "error"), [
    (httpx.ConnectError("connection refused"), PSPUnavailable),
    (httpx.ConnectTimeout("connect timed out"), PSPUnavailable),
    (httpx.ReadTimeout("read timed out"), PSPTimeout),
    (httpx.RemoteProtocolError("peer closed connection"), PSPOutcomeUnknown),
    # httpx-aiohttp (production) raises ConnectTimeout for a drop after sending too
    (_from_aiohttp(httpx.ConnectTimeout("Server disconnected"),
                   aiohttp.ServerDisconnectedError()), PSPTimeout),  # unknown, not unavailable
    (_from_aiohttp(httpx.ConnectTimeout("Cannot connect"), aiohttp.ClientConnectorError(
        None, OSError(111, "Connection refused"))), PSPUnavailable),  # type: ignore[arg-type]
])
async def test_transport_failures(recorded, raised: Exception, error: type[Exception]) -> None:
    server, adapter = recorded
    server.raise_ = raised

    with pytest.raises(error) as caught:
        await adapter.authorize(request())

    assert type(caught.value) is error
    assert len(server.requests) == 1  # the SDK's own retries are off: kassa decides


async def test_an_answer_kassa_cannot_read_is_outcome_unknown(recorded) -> None:
    server, adapter = recorded
    server.on("POST", "/v1/payment_intents", {**RECORDED["payment_intent_requires_capture"],
                                              "amount_capturable": "2500", "currency": "xxx"})

    with pytest.raises(PSPOutcomeUnknown, match="malformed"):
        await adapter.authorize(request())


async def test_partial_capture_reports_amount_received_and_the_charge(recorded) -> None:
    """Stripe: amount_received after capturing 2000 of 2500, the rest released, and
    latest_charge an id (localstripe embeds the charge and models the release as a
    refund)."""
    server, adapter = recorded
    server.on("POST", f"/v1/payment_intents/{PI_ID}/capture",
              RECORDED["payment_intent_partially_captured"])

    result = await adapter.capture(idempotency_key="at_capture", psp_reference=PI_ID,
                                   amount=Money(2000, "eur"))

    assert (result.outcome, result.amount, result.psp_reference) == (
        Outcome.CAPTURED, Money(2000, "eur"), "ch_3QrecAuthLueXt1u")
    assert server.form()["amount_to_capture"] == ["2000"]
    assert server.requests[0].headers["idempotency-key"] == "at_capture"


async def test_capture_of_an_expired_authorisation_fails_as_expired(recorded) -> None:
    server, adapter = recorded
    server.on("POST", f"/v1/payment_intents/{PI_ID}/capture",
              RECORDED["error_charge_expired_for_capture"])

    result = await adapter.capture(idempotency_key="at_capture", psp_reference=PI_ID,
                                   amount=EUR_25)

    assert (result.outcome, result.decline_code) == (Outcome.FAILED, "authorization_expired")


async def test_cancel_of_a_canceled_intent_is_voided(recorded) -> None:
    """A second cancel under a new key: Stripe refuses with the intent canceled inside
    the error (localstripe answers a bare 400)."""
    server, adapter = recorded
    server.on("POST", f"/v1/payment_intents/{PI_ID}/cancel",
              RECORDED["error_unexpected_state_canceled"])

    result = await adapter.void(idempotency_key="at_void_2", psp_reference=PI_ID)

    assert result.outcome is Outcome.VOIDED


async def test_3ds_gives_the_redirect_url(recorded) -> None:
    server, adapter = recorded
    server.on("POST", "/v1/payment_intents", RECORDED["payment_intent_requires_action"])

    result = await adapter.authorize(request("ch_attempt_3ds", capture=True,
                                             pm="pm_card_authenticationRequired"))

    assert result.outcome is Outcome.REQUIRES_ACTION
    assert result.action_url and result.action_url.startswith(
        "https://hooks.stripe.com/3d_secure_2/hosted")


async def test_lookup_by_stripes_records(recorded) -> None:
    server, adapter = recorded
    server.on("GET", f"/v1/payment_intents/{PI_ID}", RECORDED["payment_intent_partially_captured"])
    server.on("GET", "/v1/refunds", {"object": "list", "url": "/v1/refunds", "has_more": False,
                                     "data": [RECORDED["refund_pending"],
                                              RECORDED["refund_succeeded"]]})
    server.on("GET", "/v1/payment_intents", {
        "object": "list", "url": "/v1/payment_intents", "has_more": False,
        "data": [RECORDED["payment_intent_requires_action"],
                 RECORDED["payment_intent_partially_captured"]]})

    assert (await adapter.lookup(ref(Operation.CAPTURE, "at_capture"))).amount == \
        Money(2000, "eur")
    assert (await adapter.lookup(ref(Operation.REFUND, "re_attempt_1"))).outcome is \
        Outcome.REFUNDED
    assert (await adapter.lookup(ref(Operation.REFUND, "re_attempt_2"))).outcome is \
        Outcome.REFUND_PENDING
    with pytest.raises(UnknownOperation):
        await adapter.lookup(ref(Operation.REFUND, "re_attempt_never_sent"))
    found = await adapter.lookup(ref(Operation.AUTHORIZE, "ch_attempt_auth", None))
    assert (found.outcome, found.psp_reference) == (Outcome.CAPTURED, PI_ID)
    listed = [r for r in server.requests if r.url.path == "/v1/payment_intents"]
    assert listed[0].url.params["created[gte]"] == str(1764675000 - 300)
    server.on("GET", "/v1/refunds/re_3QrecRefundTwo", {**RECORDED["refund_pending"],
                                                      "status": "succeeded"})
    settled = await adapter.lookup(ref(Operation.REFUND, "re_attempt_2", "re_3QrecRefundTwo"))
    assert settled.outcome is Outcome.REFUNDED  # a pending refund, polled by its own id
    voided = await adapter.lookup(ref(Operation.VOID, "at_void"))
    assert (voided.outcome, voided.decline_code) == (Outcome.FAILED, "already_captured")


def _signed(body: bytes, *, secret: str = SECRET, at: int | None = None) -> dict[str, str]:
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, at)
    return {"stripe-signature": header}


async def _parse(adapter: StripeAdapter, name: str) -> list[Any]:
    body = orjson.dumps(RECORDED[name])
    at = int(time.time())  # the SDK's verifier checks the signature's age on the wall clock
    return list(await adapter.parse_webhook(headers=_signed(body, at=at), body=body, now=at))


async def test_webhook_authorisation_events(recorded) -> None:
    _, adapter = recorded
    (ok,) = await _parse(adapter, "event_payment_intent_succeeded")
    (failed,) = await _parse(adapter, "event_payment_intent_payment_failed")

    assert (ok.type, ok.outcome, ok.reference, ok.psp_reference, ok.amount) == (
        PSPEventType.AUTHORIZATION_UPDATED, Outcome.CAPTURED, "ch_attempt_3ds",
        "pi_3Qrec3dsLueXt1u", EUR_25)
    assert (failed.outcome, failed.decline_code) == (
        Outcome.DECLINED, "payment_intent_authentication_failure")
    # same second, same intent: the one further along its lifecycle orders later
    assert ok.object_ref == failed.object_ref and ok.sequence != failed.sequence


async def test_webhook_refund_failed_after_succeeding(recorded) -> None:
    _, adapter = recorded
    (event,) = await _parse(adapter, "event_charge_refund_updated_failed")

    assert (event.type, event.reference, event.operation_reference, event.failure_code) == (
        PSPEventType.REFUND_FAILED, "re_attempt_1", "re_3QrecRefundOne",
        "expired_or_canceled_card")
    assert event.psp_reference == PI_ID and event.amount == Money(500, "eur")


async def test_webhook_dispute_reads_kassas_attempt_from_the_intent(recorded) -> None:
    server, adapter = recorded
    server.on("GET", f"/v1/payment_intents/{PI_ID}", RECORDED["payment_intent_partially_captured"])

    (event,) = await _parse(adapter, "event_charge_dispute_closed")

    assert (event.type, event.reference, event.psp_reference) == (
        PSPEventType.DISPUTE_CLOSED, "ch_attempt_auth", PI_ID)
    assert event.dispute is not None
    assert (event.dispute.status, event.dispute.amount, event.dispute.psp_dispute_id) == (
        DisputeStatus.WON, Money(2000, "eur"), "dp_1QrecDispute")


async def test_a_dispute_webhook_stripe_cannot_be_asked_about_is_not_stored(recorded) -> None:
    server, adapter = recorded
    server.on("GET", f"/v1/payment_intents/{PI_ID}", RECORDED["error_api"])

    with pytest.raises(PSPOutcomeUnknown):  # the delivery fails; Stripe delivers it again
        await _parse(adapter, "event_charge_dispute_closed")


async def test_webhooks_kassa_does_not_act_on_are_verified_and_dropped(recorded) -> None:
    _, adapter = recorded
    assert await _parse(adapter, "event_charge_captured") == []
    body = orjson.dumps(RECORDED["event_charge_captured"])
    with pytest.raises(WebhookRejected):
        await adapter.parse_webhook(headers=_signed(body, secret="whsec_other"), body=body,
                                    now=int(time.time()))


async def test_a_signed_but_malformed_event_is_refused(recorded) -> None:
    _, adapter = recorded
    event = RECORDED["event_payment_intent_succeeded"]
    body = orjson.dumps({**event, "data": {"object": {**event["data"]["object"],
                                                      "currency": "xxx"}}})
    with pytest.raises(WebhookRejected, match="malformed"):
        await adapter.parse_webhook(headers=_signed(body), body=body, now=int(time.time()))


async def test_webhook_secret_rotation(recorded) -> None:
    server, _ = recorded
    async with httpx.AsyncClient(transport=httpx.MockTransport(server.handle)) as client:
        adapter = StripeAdapter(client, StripeSettings(
            secret_key="sk_test_recorded", webhook_secret=f"whsec_new, {SECRET}"))
        assert len(await _parse(adapter, "event_payment_intent_succeeded")) == 1


def test_settings_refuse_what_is_not_a_secret_key() -> None:
    with pytest.raises(ValueError):
        StripeSettings(secret_key="pk_test_publishable")
    assert not StripeSettings().configured()
