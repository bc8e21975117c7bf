"""One contract suite for every PSP adapter: each must satisfy kassa's PSPAdapter protocol.

Each PSP joins by adding a harness factory to ``HARNESSES``: it builds the adapter against
a real server on loopback and offers the few PSP-specific hooks the suite needs (which
cards approve/decline, how many authorizations a key produced, fault injection). A hook
a PSP's test server cannot offer calls ``pytest.skip``.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

import httpx
import orjson
import pytest

from kassa.domain.money import Money
from kassa.psp.base import (
    AuthorizeRequest,
    Card,
    Outcome,
    PSPAdapter,
    PSPOutcomeUnknown,
    PSPRejected,
    PSPRetryable,
    PSPTimeout,
    UnknownOperation,
    WebhookRejected,
)
from kassa.psp.simulator import SimulatorAdapter, SimulatorConfig, signature
from kassa.vault.test_cards import TEST_PAYMENT_METHODS
from tests.support.simulator_server import running_simulator


class PSPHarness(Protocol):
    """What the contract suite needs from one PSP's test setup."""

    def adapter(self, *, timeout: float = 5.0, base_url: str | None = None) -> PSPAdapter:
        """The adapter under test; ``base_url`` points it somewhere else (a closed port)."""
        ...

    async def authorizations_with_key(self, idempotency_key: str) -> int:
        """How many authorizations the PSP holds for one idempotency key."""
        ...

    async def inject_fault(self, fault: str, *, hang_s: float = 0.0) -> None:
        """Make the next mutating call fail: ``error`` (5xx, nothing done) or
        ``timeout_after_charge`` (acts, then hangs ``hang_s``)."""
        ...

    async def dispute_webhook(self, adapter: PSPAdapter) -> tuple[dict[str, str], bytes]:
        """Headers and raw body of a webhook the PSP sends when a captured payment made
        through ``adapter`` is disputed."""
        ...


class SimulatorHarness:
    def __init__(self, client: httpx.AsyncClient, base_url: str) -> None:
        self._client = client
        self._base_url = base_url

    def adapter(self, *, timeout: float = 5.0, base_url: str | None = None) -> PSPAdapter:
        return SimulatorAdapter(self._client, base_url or self._base_url, timeout=timeout,
                                webhook_secrets=[WEBHOOK_SECRET])

    async def authorizations_with_key(self, idempotency_key: str) -> int:
        listed = (await self._client.get(f"{self._base_url}/_sim/authorizations")).json()
        return sum(1 for a in listed if a["idempotency_key"] == idempotency_key)

    async def inject_fault(self, fault: str, *, hang_s: float = 0.0) -> None:
        await self._client.post(f"{self._base_url}/_sim/config", json={"timeout_hang_s": hang_s})
        await self._client.post(f"{self._base_url}/_sim/faults", json={"faults": [fault]})

    async def dispute_webhook(self, adapter: PSPAdapter) -> tuple[dict[str, str], bytes]:
        card = TEST_PAYMENT_METHODS["pm_card_createDispute"]
        await adapter.authorize(authorize_request(card, capture=True))
        # the simulator holds its events; this is the body and header it would POST
        (event,) = (await self._client.get(f"{self._base_url}/_sim/webhooks")).json()
        body = orjson.dumps({k: event[k] for k in ("id", "object", "type", "created",
                                                    "sequence", "data")})
        return {signature.HEADER: signature.header(WEBHOOK_SECRET, int(time.time()), body)}, body


WEBHOOK_SECRET = "whsec_contract"


@pytest.fixture(scope="module")
def contract_simulator_url() -> Iterator[str]:
    """Its own simulator, so resetting it between tests disturbs no other suite."""
    with running_simulator(SimulatorConfig(webhook_secret=WEBHOOK_SECRET,
                                           webhook_hold=True)) as url:
        yield url


@asynccontextmanager
async def simulator_harness(request: pytest.FixtureRequest) -> AsyncIterator[PSPHarness]:
    base_url = request.getfixturevalue("contract_simulator_url")
    async with httpx.AsyncClient() as client:
        await client.post(f"{base_url}/_sim/reset")
        yield SimulatorHarness(client, base_url)


# Add stripe (localstripe) and adyen (its fake) here as they arrive.
HARNESSES: dict[str, Callable[[pytest.FixtureRequest],
                              AbstractAsyncContextManager[PSPHarness]]] = {
    "simulator": simulator_harness,
}


@pytest.fixture(params=sorted(HARNESSES))
async def psp(request: pytest.FixtureRequest) -> AsyncIterator[PSPHarness]:
    async with HARNESSES[request.param](request) as harness:
        yield harness


VISA = TEST_PAYMENT_METHODS["pm_card_visa"]
EUR_10 = Money(1000, "eur")


def key() -> str:
    return f"att_{uuid.uuid4().hex}"


def authorize_request(card: Card = VISA, *, capture: bool, amount: Money = EUR_10,
                      idempotency_key: str | None = None) -> AuthorizeRequest:
    return AuthorizeRequest(idempotency_key=idempotency_key or key(), amount=amount, card=card,
                            capture=capture, merchant_id="mer_contract",
                            description="contract test")


async def _authorized(adapter: PSPAdapter) -> str:
    result = await adapter.authorize(authorize_request(capture=False))
    assert result.outcome is Outcome.AUTHORIZED
    return result.psp_reference


async def test_adapter_satisfies_the_protocol(psp: PSPHarness) -> None:
    adapter = psp.adapter()
    assert isinstance(adapter, PSPAdapter)
    assert adapter.name


async def test_authorize_and_capture_in_one_call(psp: PSPHarness) -> None:
    adapter = psp.adapter()
    request = authorize_request(capture=True)

    result = await adapter.authorize(request)

    assert result.outcome is Outcome.CAPTURED
    assert result.amount == EUR_10
    assert result.psp_reference
    status = await adapter.get_status(idempotency_key=request.idempotency_key)
    assert (status.outcome, status.psp_reference) == (Outcome.CAPTURED, result.psp_reference)


async def test_authorize_then_capture_partially(psp: PSPHarness) -> None:
    adapter = psp.adapter()
    reference = await _authorized(adapter)
    capture_key = key()

    result = await adapter.capture(idempotency_key=capture_key, psp_reference=reference,
                                   amount=Money(600, "eur"))

    assert (result.outcome, result.amount) == (Outcome.CAPTURED, Money(600, "eur"))
    status = await adapter.get_status(idempotency_key=capture_key)
    assert status.outcome is Outcome.CAPTURED


async def test_void_an_authorization(psp: PSPHarness) -> None:
    adapter = psp.adapter()
    request = authorize_request(capture=False)
    reference = (await adapter.authorize(request)).psp_reference

    result = await adapter.void(idempotency_key=key(), psp_reference=reference)

    assert result.outcome is Outcome.VOIDED
    status = await adapter.get_status(idempotency_key=request.idempotency_key)
    assert status.outcome is Outcome.VOIDED


async def test_refund_partially_twice(psp: PSPHarness) -> None:
    adapter = psp.adapter()
    reference = (await adapter.authorize(authorize_request(capture=True))).psp_reference

    first = await adapter.refund(idempotency_key=key(), psp_reference=reference,
                                 amount=Money(300, "eur"))
    second = await adapter.refund(idempotency_key=key(), psp_reference=reference,
                                  amount=Money(200, "eur"))

    assert (first.outcome, first.amount) == (Outcome.REFUNDED, Money(300, "eur"))
    assert (second.outcome, second.amount) == (Outcome.REFUNDED, Money(200, "eur"))
    assert first.psp_reference != second.psp_reference


@pytest.mark.parametrize(("pm_id", "decline_code"), [
    ("pm_card_chargeDeclined", "generic_decline"),
    ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
])
async def test_a_decline_is_a_result_not_an_exception(psp: PSPHarness, pm_id: str,
                                                      decline_code: str) -> None:
    card = TEST_PAYMENT_METHODS[pm_id]
    result = await psp.adapter().authorize(authorize_request(card, capture=True))

    assert result.outcome is Outcome.DECLINED
    assert result.decline_code == decline_code
    assert result.message


async def test_3ds_card_requires_action(psp: PSPHarness) -> None:
    card = TEST_PAYMENT_METHODS["pm_card_authenticationRequired"]
    result = await psp.adapter().authorize(authorize_request(card, capture=True))

    assert result.outcome is Outcome.REQUIRES_ACTION
    assert result.action_url and result.action_url.startswith("http")


async def test_repeating_a_call_with_its_key_authorizes_once(psp: PSPHarness) -> None:
    adapter = psp.adapter()
    request = authorize_request(capture=True)

    first = await adapter.authorize(request)
    second = await adapter.authorize(request)

    assert second.psp_reference == first.psp_reference
    assert second.outcome is first.outcome is Outcome.CAPTURED
    assert await psp.authorizations_with_key(request.idempotency_key) == 1


async def test_get_status_of_an_unknown_key_raises_unknown_operation(psp: PSPHarness) -> None:
    with pytest.raises(UnknownOperation):
        await psp.adapter().get_status(idempotency_key=key())


async def test_timeout_after_charge_then_get_status_shows_captured(psp: PSPHarness) -> None:
    await psp.inject_fault("timeout_after_charge", hang_s=0.5)
    request = authorize_request(capture=True)

    with pytest.raises(PSPTimeout):
        await psp.adapter(timeout=0.1).authorize(request)

    status = await psp.adapter().get_status(idempotency_key=request.idempotency_key)
    assert status.outcome is Outcome.CAPTURED
    assert await psp.authorizations_with_key(request.idempotency_key) == 1


async def test_5xx_is_retryable_and_nothing_happened(psp: PSPHarness) -> None:
    adapter = psp.adapter()
    await psp.inject_fault("error")
    request = authorize_request(capture=True)

    with pytest.raises(PSPRetryable) as caught:
        await adapter.authorize(request)

    assert not isinstance(caught.value, PSPTimeout)
    with pytest.raises(UnknownOperation):
        await adapter.get_status(idempotency_key=request.idempotency_key)
    retried = await adapter.authorize(request)  # repeating with the same key is safe
    assert retried.outcome is Outcome.CAPTURED


async def test_connection_refused_is_retryable(psp: PSPHarness) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and now is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    adapter = psp.adapter(base_url=f"http://127.0.0.1:{port}")

    with pytest.raises(PSPRetryable):
        await adapter.authorize(authorize_request(capture=True))


async def test_key_conflict_is_outcome_unknown_and_hides_the_card(psp: PSPHarness) -> None:
    adapter = psp.adapter()
    request = authorize_request(capture=False)
    await adapter.authorize(request)
    # The same key with a different amount: the PSP holds the key for a request it may
    # have acted on, so this is no refusal; get_status says what happened under the key.
    conflicting = authorize_request(capture=False, amount=Money(999, "eur"),
                                    idempotency_key=request.idempotency_key)

    with pytest.raises(PSPOutcomeUnknown) as caught:
        await adapter.authorize(conflicting)

    assert VISA.number not in str(caught.value)
    assert (await adapter.get_status(idempotency_key=request.idempotency_key)).outcome \
        is Outcome.AUTHORIZED


async def test_capture_of_an_unknown_reference_is_rejected(psp: PSPHarness) -> None:
    with pytest.raises(PSPRejected):
        await psp.adapter().capture(idempotency_key=key(), psp_reference="nope_unknown",
                                    amount=EUR_10)


async def test_a_genuine_webhook_is_verified_and_normalised(psp: PSPHarness) -> None:
    adapter = psp.adapter()
    headers, body = await psp.dispute_webhook(adapter)

    events = await adapter.parse_webhook(headers=headers, body=body, now=int(time.time()))

    assert events and all(e.psp == adapter.name and e.event_id and e.sequence >= 1
                          for e in events)
    assert any(e.dispute is not None and e.dispute.amount == EUR_10 for e in events)


async def test_an_unsigned_or_altered_webhook_is_rejected(psp: PSPHarness) -> None:
    adapter = psp.adapter()
    headers, body = await psp.dispute_webhook(adapter)
    now = int(time.time())

    with pytest.raises(WebhookRejected):
        await adapter.parse_webhook(headers={}, body=body, now=now)
    with pytest.raises(WebhookRejected):
        await adapter.parse_webhook(headers=headers, body=body.replace(b"1000", b"9000"),
                                    now=now)
    with pytest.raises(WebhookRejected):  # replayed an hour later
        await adapter.parse_webhook(headers=headers, body=body, now=now + 3600)

