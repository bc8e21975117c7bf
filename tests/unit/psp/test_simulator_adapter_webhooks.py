"""SimulatorAdapter.parse_webhook: verification (signature, tolerance, rotation, size) and the
mapping of the simulator's events to kassa's PSPEvent — no network needed."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from kassa.domain.disputes import DisputeStatus
from kassa.domain.money import Money
from kassa.psp.base import PSPEventType, WebhookRejected
from kassa.psp.simulator import SimulatorAdapter, signature

NOW = 1_700_000_000


def adapter(secrets: tuple[str, ...] = ("s1",)) -> SimulatorAdapter:
    return SimulatorAdapter(httpx.AsyncClient(), "http://sim.invalid", webhook_secrets=secrets)


def dispute_event(status: str = "needs_response", sequence: int = 1) -> dict[str, Any]:
    return {"id": "simevt_1", "object": "event", "type": "dispute.created", "created": NOW,
            "sequence": sequence, "data": {"object": {
                "id": "sdp_1", "object": "dispute", "authorization": "sim_1",
                "authorization_idempotency_key": "ch_1", "amount": 5000, "currency": "usd",
                "reason": "fraudulent", "status": status, "evidence": {},
                "evidence_due_by": NOW + 100, "created": NOW}}}


def refund_event(type_: str = "refund.failed") -> dict[str, Any]:
    return {"id": "simevt_2", "object": "event", "type": type_, "created": NOW,
            "sequence": 2, "data": {"object": {
                "id": "simop_1", "object": "refund", "authorization": "sim_1",
                "idempotency_key": "att_1", "status": "failed", "amount": 300,
                "currency": "eur", "failure_code": "refund_failed",
                "message": "card 4242424242424242 closed", "created": NOW}}}


def deliver(payload: dict[str, Any], *, secret: str = "s1", at: int = NOW
            ) -> tuple[dict[str, str], bytes]:
    body = orjson.dumps(payload)
    return {"sim-signature": signature.header(secret, at, body)}, body


async def test_dispute_event_is_normalised():
    headers, body = deliver(dispute_event())
    (event,) = await adapter().parse_webhook(headers=headers, body=body, now=NOW)
    assert (event.psp, event.event_id, event.type) == ("simulator", "simevt_1",
                                                       PSPEventType.DISPUTE_CREATED)
    assert (event.object_ref, event.sequence, event.psp_reference, event.reference) == (
        "sdp_1", 1, "sim_1", "ch_1")
    assert event.dispute is not None
    assert (event.dispute.status, event.dispute.amount, event.dispute.evidence_due_by) == (
        DisputeStatus.NEEDS_RESPONSE, Money(5000, "usd"), NOW + 100)


async def test_refund_event_is_normalised_and_redacted():
    headers, body = deliver(refund_event())
    (event,) = await adapter().parse_webhook(headers=headers, body=body, now=NOW + 10)
    assert (event.type, event.reference, event.operation_reference, event.amount) == (
        PSPEventType.REFUND_FAILED, "att_1", "simop_1", Money(300, "eur"))
    assert event.failure_code == "refund_failed"
    assert event.message is not None and "4242424242424242" not in event.message


async def test_secret_rotation_accepts_old_and_new():
    headers, body = deliver(dispute_event(), secret="old")
    events = await adapter(("new", "old")).parse_webhook(headers=headers, body=body, now=NOW)
    assert len(events) == 1


@pytest.mark.parametrize("case", ["unsigned", "wrong secret", "tampered", "stale", "future",
                                  "no secret configured", "too large"])
async def test_unverifiable_deliveries_are_rejected(case: str):
    headers, body = deliver(dispute_event())
    a = adapter()
    now = NOW
    if case == "unsigned":
        headers = {}
    elif case == "wrong secret":
        headers, body = deliver(dispute_event(), secret="guess")
    elif case == "tampered":
        body = body.replace(b"needs_response", b"won")
    elif case == "stale":
        now = NOW + 301
    elif case == "future":
        now = NOW - 301
    elif case == "no secret configured":
        a = adapter(())
    elif case == "too large":
        body = body + b" " * 300_000
    with pytest.raises(WebhookRejected):
        await a.parse_webhook(headers=headers, body=body, now=now)


@pytest.mark.parametrize("mutate", [
    lambda e: e.pop("sequence"),
    lambda e: e.update(sequence=0),
    lambda e: e.update(sequence=True),
    lambda e: e["data"]["object"].update(status="exploded"),
    lambda e: e["data"]["object"].update(currency="xxx"),
    lambda e: e["data"]["object"].update(amount="lots"),
    lambda e: e["data"]["object"].pop("authorization_idempotency_key"),
    lambda e: e["data"].pop("object"),
])
async def test_signed_but_malformed_events_are_rejected(mutate):
    payload = dispute_event()
    mutate(payload)
    headers, body = deliver(payload)
    with pytest.raises(WebhookRejected):
        await adapter().parse_webhook(headers=headers, body=body, now=NOW)


async def test_signed_body_that_is_not_json_is_rejected():
    body = b"not json"
    headers = {"sim-signature": signature.header("s1", NOW, body)}
    with pytest.raises(WebhookRejected):
        await adapter().parse_webhook(headers=headers, body=body, now=NOW)


async def test_unknown_event_types_are_verified_then_dropped():
    payload = dispute_event()
    payload["type"] = "authorization.reviewed"
    headers, body = deliver(payload)
    assert await adapter().parse_webhook(headers=headers, body=body, now=NOW) == []
    with pytest.raises(WebhookRejected):  # still verified first
        await adapter().parse_webhook(headers={}, body=body, now=NOW)
