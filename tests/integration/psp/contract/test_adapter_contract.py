"""One contract suite for every PSP adapter: each must satisfy kassa's PSPAdapter protocol,
and what it answers must be what the PSP itself recorded (its own records, read through
the harness: the simulator's inspection endpoints, localstripe's objects via the SDK)."""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Awaitable, Callable

import pytest

from kassa.domain.money import Money
from kassa.domain.payments import Operation
from kassa.psp.base import (
    AttemptRef,
    Outcome,
    PSPAdapter,
    PSPOutcomeUnknown,
    PSPRejected,
    PSPResult,
    PSPTimeout,
    PSPUnavailable,
    UnknownOperation,
    WebhookRejected,
)
from tests.integration.psp.contract.harnesses import (
    EUR_10,
    PSPHarness,
    authorize_request,
    key,
)


def ref(operation: Operation, idempotency_key: str, *, psp_reference: str | None = None,
        amount: Money = EUR_10) -> AttemptRef:
    """The attempt as kassa recorded it, for lookup (a recovery after a crash)."""
    return AttemptRef(operation=operation, idempotency_key=idempotency_key, amount=amount,
                      merchant_id="mer_contract", payment_id="pi_contract",
                      psp_reference=psp_reference, created=int(time.time()))


async def resolve(psp: PSPHarness, adapter: PSPAdapter, attempt: AttemptRef,
                  repeat: Callable[[], Awaitable[PSPResult]]) -> PSPResult:
    """What recovery learns of an attempt (saga.ask): the PSP's lookup, or — at a PSP that
    reads nothing back — the call repeated with its key; then its settled outcome."""
    try:
        found = await adapter.lookup(attempt)
    except UnknownOperation:
        if not psp.resolves_by_repeating:
            raise
        found = await repeat()
    return await psp.settled(adapter, found, attempt.idempotency_key)


async def _authorized(psp: PSPHarness, adapter: PSPAdapter) -> str:
    result = await adapter.authorize(authorize_request(psp.visa, capture=False))
    assert result.outcome is Outcome.AUTHORIZED
    return result.psp_reference


async def test_adapter_satisfies_the_protocol(psp: PSPHarness) -> None:
    adapter = psp.adapter()
    assert isinstance(adapter, PSPAdapter)
    assert adapter.name == psp.name


async def test_authorize_and_capture_in_one_call(psp: PSPHarness) -> None:
    adapter = psp.adapter()
    request = authorize_request(psp.visa, capture=True)

    result = await adapter.authorize(request)

    assert result.outcome is Outcome.CAPTURED
    assert result.amount in (EUR_10, None)  # None: the PSP does not say (localstripe)
    assert result.psp_reference
    found = await resolve(psp, adapter, ref(Operation.AUTHORIZE, request.idempotency_key),
                          lambda: adapter.authorize(request))
    assert (found.outcome, found.psp_reference) == (Outcome.CAPTURED, result.psp_reference)
    assert await psp.record(result.psp_reference) == ("captured", 1000, 0)


async def test_authorize_then_capture_in_full(psp: PSPHarness) -> None:
    adapter = psp.adapter()
    reference = await _authorized(psp, adapter)
    assert (await psp.record(reference)).state == "authorized"

    capture_key = key()
    result = await psp.settled(adapter, await adapter.capture(
        idempotency_key=capture_key, psp_reference=reference, amount=EUR_10), capture_key)

    assert result.outcome is Outcome.CAPTURED
    assert await psp.record(reference) == ("captured", 1000, 0)


async def test_authorize_then_capture_partially(psp: PSPHarness) -> None:
    adapter = psp.adapter()
    reference = await _authorized(psp, adapter)
    capture_key = key()

    def send() -> Awaitable[PSPResult]:
        return adapter.capture(idempotency_key=capture_key, psp_reference=reference,
                               amount=Money(600, "eur"))

    result = await psp.settled(adapter, await send(), capture_key)

    assert result.outcome is Outcome.CAPTURED
    assert result.amount in (Money(600, "eur"), None)
    found = await resolve(psp, adapter, ref(Operation.CAPTURE, capture_key,
                                            psp_reference=reference,
                                            amount=Money(600, "eur")), send)
    assert found.outcome is Outcome.CAPTURED
    assert await psp.record(reference) == ("captured", 600, 0)


async def test_void_an_authorization(psp: PSPHarness) -> None:
    adapter = psp.adapter()
    request = authorize_request(psp.visa, capture=False)
    reference = (await adapter.authorize(request)).psp_reference
    void_key = key()

    def send() -> Awaitable[PSPResult]:
        return adapter.void(idempotency_key=void_key, psp_reference=reference)

    result = await psp.settled(adapter, await send(), void_key)

    assert result.outcome is Outcome.VOIDED
    assert (await resolve(psp, adapter, ref(Operation.VOID, void_key,
                                            psp_reference=reference), send)
            ).outcome is Outcome.VOIDED
    if not psp.resolves_by_repeating:  # a repeat is answered as first: Authorised
        assert (await adapter.lookup(ref(Operation.AUTHORIZE, request.idempotency_key))
                ).outcome is Outcome.VOIDED
    assert await psp.record(reference) == ("voided", 0, 0)


async def test_refund_partially_several_times(psp: PSPHarness) -> None:
    adapter = psp.adapter()
    reference = (await adapter.authorize(authorize_request(psp.visa, capture=True))
                 ).psp_reference
    keys = [key(), key(), key()]

    amounts = dict(zip(keys, (300, 200, 100), strict=True))

    def send(k: str) -> Callable[[], Awaitable[PSPResult]]:
        return lambda: adapter.refund(idempotency_key=k, psp_reference=reference,
                                      amount=Money(amounts[k], "eur"))

    results = [await psp.settled(adapter, await send(k)(), k) for k in keys]

    assert [(r.outcome, r.amount) for r in results] == [
        (Outcome.REFUNDED, Money(m, "eur")) for m in (300, 200, 100)]
    assert len({r.psp_reference for r in results}) == 3
    for k, r in zip(keys, results, strict=True):
        found = await resolve(psp, adapter, ref(Operation.REFUND, k, psp_reference=reference),
                              send(k))
        assert (found.outcome, found.psp_reference) == (Outcome.REFUNDED, r.psp_reference)
    assert await psp.record(reference) == ("captured", 1000, 600)


async def test_declines_are_results_with_their_decline_code(psp: PSPHarness) -> None:
    adapter = psp.adapter()
    for method, decline_code in psp.declines:
        result = await adapter.authorize(authorize_request(method, capture=True))

        assert result.outcome is Outcome.DECLINED, method
        assert result.decline_code == decline_code
        assert result.message
        assert method.card.number not in result.message


async def test_off_session_charge_of_a_card_asking_for_3ds_is_declined(psp: PSPHarness
                                                                      ) -> None:
    """The customer is not there to authenticate: the PSP declines authentication_required
    (Stripe's off_session, Adyen's ContAuth). localstripe ignores off_session and asks for
    3DS anyway; kassa's finisher turns that answer into the same decline
    (services/confirm.off_session_result, tests/unit/services/test_off_session.py)."""
    adapter = psp.adapter()
    request = dataclasses.replace(authorize_request(psp.three_ds, capture=True),
                                  off_session=True)

    result = await adapter.authorize(request)

    if psp.name == "stripe":
        assert result.outcome is Outcome.REQUIRES_ACTION  # localstripe's difference
        return
    assert result.outcome is Outcome.DECLINED
    assert result.decline_code == "authentication_required"
    assert await psp.record(result.psp_reference) == ("declined", 0, 0)


@pytest.mark.parametrize("succeed", [True, False], ids=["authenticated", "failed"])
async def test_3ds_requires_action_then_resolves(psp: PSPHarness, succeed: bool) -> None:
    adapter = psp.adapter()
    request = authorize_request(psp.three_ds, capture=True)

    result = await adapter.authorize(request)

    assert result.outcome is Outcome.REQUIRES_ACTION
    if psp.gives_action_url:
        assert result.action_url and result.action_url.startswith("http")
    attempt = ref(Operation.AUTHORIZE, request.idempotency_key,
                  psp_reference=result.psp_reference)
    assert (await resolve(psp, adapter, attempt, lambda: adapter.authorize(request))
            ).outcome is Outcome.REQUIRES_ACTION
    await psp.complete_authentication(result, succeed=succeed)
    found = await psp.authentication_outcome(adapter, result, request.idempotency_key,
                                             capture=True)
    if succeed:
        assert found.outcome is Outcome.CAPTURED
        assert await psp.record(result.psp_reference) == ("captured", 1000, 0)
    else:
        assert found.outcome is Outcome.DECLINED and found.decline_code


async def test_repeating_a_call_with_its_key_authorizes_once(replaying_psp: PSPHarness) -> None:
    psp = replaying_psp
    adapter = psp.adapter()
    request = authorize_request(psp.visa, capture=True)

    first = await adapter.authorize(request)
    second = await adapter.authorize(request)

    assert second.psp_reference == first.psp_reference
    assert second.outcome is first.outcome is Outcome.CAPTURED
    assert await psp.authorizations_with_key(request.idempotency_key) == 1


async def test_lookup_of_an_attempt_the_psp_never_got_is_unknown(psp: PSPHarness) -> None:
    adapter = psp.adapter()
    with pytest.raises(UnknownOperation):
        await adapter.lookup(ref(Operation.AUTHORIZE, key()))
    reference = (await adapter.authorize(authorize_request(psp.visa, capture=True))
                 ).psp_reference
    with pytest.raises(UnknownOperation):
        await adapter.lookup(ref(Operation.REFUND, key(), psp_reference=reference))


async def test_lost_answers_are_resolved_by_lookup(psp: PSPHarness) -> None:
    """A crash or timeout after the PSP acted: recovery finds what it did, nothing twice."""
    await psp.inject_fault("timeout_after_charge", hang_s=0.5)
    request = authorize_request(psp.visa, capture=False)
    with pytest.raises(PSPTimeout):
        await psp.adapter(timeout=0.1).authorize(request)
    adapter = psp.adapter()
    found = await resolve(psp, adapter, ref(Operation.AUTHORIZE, request.idempotency_key),
                          lambda: adapter.authorize(request))
    assert found.outcome is Outcome.AUTHORIZED
    assert await psp.authorizations_with_key(request.idempotency_key) == 1
    reference = found.psp_reference

    capture_key = key()
    await psp.inject_fault("timeout_after_charge", hang_s=0.5)
    with pytest.raises(PSPTimeout):
        await psp.adapter(timeout=0.1).capture(idempotency_key=capture_key,
                                               psp_reference=reference, amount=EUR_10)
    assert (await resolve(psp, adapter,
                          ref(Operation.CAPTURE, capture_key, psp_reference=reference),
                          lambda: adapter.capture(idempotency_key=capture_key,
                                                  psp_reference=reference, amount=EUR_10))
            ).outcome is Outcome.CAPTURED

    refund_key = key()
    await psp.inject_fault("timeout_after_charge", hang_s=0.5)
    with pytest.raises(PSPTimeout):
        await psp.adapter(timeout=0.1).refund(idempotency_key=refund_key,
                                              psp_reference=reference,
                                              amount=Money(400, "eur"))
    refunded = await resolve(psp, adapter,
                             ref(Operation.REFUND, refund_key, psp_reference=reference),
                             lambda: adapter.refund(idempotency_key=refund_key,
                                                    psp_reference=reference,
                                                    amount=Money(400, "eur")))
    assert (refunded.outcome, refunded.amount) == (Outcome.REFUNDED, Money(400, "eur"))
    assert await psp.record(reference) == ("captured", 1000, 400)


async def test_5xx_is_outcome_unknown_and_repeating_is_safe(psp: PSPHarness) -> None:
    adapter = psp.adapter()
    await psp.inject_fault("error")
    request = authorize_request(psp.visa, capture=True)

    with pytest.raises(PSPOutcomeUnknown) as caught:
        await adapter.authorize(request)

    assert not isinstance(caught.value, PSPTimeout)
    with pytest.raises(UnknownOperation):  # nothing was done: the saga repeats the call
        await adapter.lookup(ref(Operation.AUTHORIZE, request.idempotency_key))
    retried = await adapter.authorize(request)
    assert retried.outcome is Outcome.CAPTURED
    assert await psp.authorizations_with_key(request.idempotency_key) == 1


async def test_connection_refused_is_unavailable(psp: PSPHarness) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and now is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    adapter = psp.adapter(base_url=f"http://127.0.0.1:{port}")

    with pytest.raises(PSPUnavailable):
        await adapter.authorize(authorize_request(psp.visa, capture=True))


async def test_key_conflict_is_outcome_unknown_and_hides_the_card(
        replaying_psp: PSPHarness) -> None:
    psp = replaying_psp
    adapter = psp.adapter()
    request = authorize_request(psp.visa, capture=False)
    await adapter.authorize(request)
    # The same key with a different amount: the PSP holds the key for a request it may
    # have acted on, so this is no refusal; lookup says what happened under the key.
    conflicting = authorize_request(psp.visa, capture=False, amount=Money(999, "eur"),
                                    idempotency_key=request.idempotency_key)

    with pytest.raises(PSPOutcomeUnknown) as caught:
        await adapter.authorize(conflicting)

    assert psp.visa.card.number not in str(caught.value)
    assert (await resolve(psp, adapter, ref(Operation.AUTHORIZE, request.idempotency_key),
                          lambda: adapter.authorize(request))
            ).outcome is Outcome.AUTHORIZED


async def test_capture_of_an_unknown_reference_is_rejected(psp: PSPHarness) -> None:
    with pytest.raises(PSPRejected):
        await psp.adapter().capture(idempotency_key=key(), psp_reference="nope_unknown",
                                    amount=EUR_10)


async def test_a_genuine_webhook_is_verified_and_normalised(psp: PSPHarness) -> None:
    adapter = psp.adapter()
    headers, body = await psp.dispute_webhook(adapter)

    events = await adapter.parse_webhook(headers=headers, body=body, now=int(time.time()))

    assert events and all(e.psp == adapter.name and e.event_id and e.sequence >= 1
                          and e.reference for e in events)
    assert any(e.dispute is not None and e.dispute.amount == EUR_10 for e in events)


async def test_an_unsigned_or_altered_webhook_is_rejected(psp: PSPHarness) -> None:
    adapter = psp.adapter()
    headers, body = await psp.dispute_webhook(adapter)
    now = int(time.time())

    unsigned_headers, unsigned_body = psp.unsigned(headers, body)
    with pytest.raises(WebhookRejected):
        await adapter.parse_webhook(headers=unsigned_headers, body=unsigned_body, now=now)
    with pytest.raises(WebhookRejected):
        await adapter.parse_webhook(headers=headers, body=body.replace(b"1000", b"9000"),
                                    now=now)
    if psp.signs_time:
        with pytest.raises(WebhookRejected):  # replayed an hour later
            await adapter.parse_webhook(headers=headers, body=body, now=now + 3600)
    else:  # nothing dates the signature: a replay is the same event, dropped as a duplicate
        first = await adapter.parse_webhook(headers=headers, body=body, now=now)
        again = await adapter.parse_webhook(headers=headers, body=body, now=now + 3600)
        assert [e.event_id for e in again] == [e.event_id for e in first]
