"""Inbound Stripe webhooks: verified with the SDK's ``Stripe-Signature`` verifier, then
normalised to kassa's PSPEvents — Stripe's event types are mapped here only.

- ``payment_intent.*`` (succeeded, amount_capturable_updated, payment_failed, canceled,
  requires_action): how an authorisation ended (``authorization.updated``); kassa's
  attempt id comes back in the intent's metadata.
- ``refund.*`` and ``charge.refund.updated``: a refund settled (succeeded) or failed,
  also after it had succeeded; its attempt id is in the refund's metadata.
- ``charge.dispute.*``: a dispute snapshot. A Stripe dispute carries no metadata of the
  payment, so its PaymentIntent is read once to learn kassa's authorisation attempt.
- Other ``charge.*`` events (succeeded, captured, failed, refunded, …) repeat what the
  PaymentIntent's and the refund's events say; they are verified and dropped, as is
  every type kassa does not act on (the PSP still gets its 200).

Stripe numbers no event per object, so ``sequence`` is the event's ``created`` second
times 16 plus the object's stage in its lifecycle: a later event wins, and of two in the
same second the one further along its lifecycle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson
import stripe

from kassa.domain.disputes import DisputeStatus
from kassa.domain.money import UnknownCurrency
from kassa.psp.base import (
    Outcome,
    PSPDispute,
    PSPError,
    PSPEvent,
    PSPEventType,
    WebhookRejected,
)
from kassa.psp.stripe import mapping as m

if TYPE_CHECKING:
    from kassa.psp.stripe.adapter import StripeAdapter

HEADER = "Stripe-Signature"
MAX_WEBHOOK_BYTES = 256 * 1024

PAYMENT_INTENT_EVENTS = frozenset({
    "payment_intent.succeeded", "payment_intent.amount_capturable_updated",
    "payment_intent.payment_failed", "payment_intent.canceled",
    "payment_intent.requires_action"})
REFUND_EVENTS = frozenset({"refund.created", "refund.updated", "refund.failed",
                           "charge.refund.updated"})
DISPUTE_EVENTS: dict[str, PSPEventType] = {
    "charge.dispute.created": PSPEventType.DISPUTE_CREATED,
    "charge.dispute.updated": PSPEventType.DISPUTE_UPDATED,
    "charge.dispute.funds_withdrawn": PSPEventType.DISPUTE_UPDATED,
    "charge.dispute.funds_reinstated": PSPEventType.DISPUTE_UPDATED,
    "charge.dispute.closed": PSPEventType.DISPUTE_CLOSED,
}
DISPUTE_STATUSES: dict[str, DisputeStatus] = {
    **{s.value: s for s in DisputeStatus},
    "prevented": DisputeStatus.WARNING_CLOSED,  # stopped before it became a chargeback
}
# an object's stage in its lifecycle, to order two events of the same second
STAGES: dict[str, int] = {
    "requires_payment_method": 1, "requires_confirmation": 1, "requires_action": 2,
    "processing": 3, "requires_capture": 4, "succeeded": 5, "canceled": 6,
    "pending": 1, "failed": 7,
    "warning_needs_response": 1, "warning_under_review": 2, "warning_closed": 3,
    "needs_response": 4, "under_review": 5, "prevented": 6, "won": 6, "lost": 6,
}


def verify(headers: Mapping[str, str], body: bytes, *, secrets: Sequence[str], now: int,
           tolerance_s: int) -> None:
    """The SDK's verifier, under any of the secrets (rolling), and kassa's clock too: a
    signature stamped more than the tolerance away from ``now`` either way is refused."""
    header = headers.get(HEADER.lower()) or headers.get(HEADER)
    if not header:
        raise WebhookRejected("no Stripe-Signature header")
    if not secrets:
        raise WebhookRejected("no Stripe webhook secret is configured")
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(body, header, secret, tolerance_s)
            break
        except stripe.SignatureVerificationError:
            continue
    else:
        raise WebhookRejected("Stripe-Signature does not match (or is too old)")
    stamps = [part[2:] for part in header.split(",") if part.startswith("t=")]
    if not stamps or not stamps[0].isdigit() or abs(now - int(stamps[0])) > tolerance_s:
        raise WebhookRejected("Stripe-Signature timestamp outside the tolerance")


async def parse(adapter: StripeAdapter, *, headers: Mapping[str, str], body: bytes,
                now: int, secrets: Sequence[str], tolerance_s: int) -> Sequence[PSPEvent]:
    if len(body) > MAX_WEBHOOK_BYTES:
        raise WebhookRejected("webhook body too large")
    verify(headers, body, secrets=secrets, now=now, tolerance_s=tolerance_s)
    try:
        payload = orjson.loads(body)
        kind = payload["type"]
        obj = payload["data"]["object"]
        if kind in DISPUTE_EVENTS:
            event = await _dispute(adapter, payload, obj, DISPUTE_EVENTS[kind])
        elif kind in PAYMENT_INTENT_EVENTS:
            event = _authorization(adapter.name, payload, obj)
        elif kind in REFUND_EVENTS:
            event = _refund(adapter.name, payload, obj)
        else:
            event = None  # verified, but nothing kassa acts on
    except m.MalformedAnswer as exc:
        raise WebhookRejected(f"malformed Stripe event ({exc})") from None
    except PSPError:
        raise  # Stripe could not be asked; the delivery fails and Stripe retries it
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, UnknownCurrency) as exc:
        raise WebhookRejected(f"malformed Stripe event ({type(exc).__name__})") from None
    return [] if event is None else [event]


def _common(psp: str, payload: dict[str, Any], obj: dict[str, Any]) -> dict[str, Any]:
    created = payload["created"]
    if isinstance(created, bool) or not isinstance(created, int) or created < 1:
        raise ValueError("created")
    return {"psp": psp, "event_id": _text(payload["id"]), "object_ref": _text(obj["id"]),
            "sequence": created * 16 + STAGES.get(str(obj.get("status")), 0),
            "created": created}


def _authorization(psp: str, payload: dict[str, Any], obj: dict[str, Any]) -> PSPEvent | None:
    if obj.get("status") not in m.AUTHORIZATION_OUTCOMES:
        return None  # processing: nothing final to record yet
    result = m.payment_intent_result(obj)
    attempt = (obj.get("metadata") or {}).get(m.ATTEMPT_KEY)
    if attempt is None:
        return None  # not a PaymentIntent kassa made
    if result.outcome is Outcome.REQUIRES_ACTION:
        return None  # kassa learns that from the call itself
    return PSPEvent(**_common(psp, payload, obj), type=PSPEventType.AUTHORIZATION_UPDATED,
                    psp_reference=result.psp_reference, reference=_text(attempt),
                    operation_reference=result.psp_reference, amount=result.amount,
                    outcome=result.outcome, decline_code=result.decline_code,
                    message=result.message)


def _refund(psp: str, payload: dict[str, Any], obj: dict[str, Any]) -> PSPEvent | None:
    if obj.get("status") not in m.REFUND_OUTCOMES:
        return None  # a status kassa has no outcome for: nothing to record
    result = m.refund_result(obj)
    if result.outcome is Outcome.REFUND_PENDING:
        return None  # nothing settled yet
    attempt = (obj.get("metadata") or {}).get(m.ATTEMPT_KEY)
    if attempt is None:
        return None  # not a refund kassa made (e.g. one made in Stripe's dashboard)
    succeeded = result.outcome is Outcome.REFUNDED
    intent = m.object_id(obj.get("payment_intent")) or m.object_id(obj.get("charge"))
    return PSPEvent(**_common(psp, payload, obj),
                    type=PSPEventType.REFUND_SUCCEEDED if succeeded
                    else PSPEventType.REFUND_FAILED,
                    psp_reference=_text(intent), reference=_text(attempt),
                    operation_reference=result.psp_reference, amount=result.amount,
                    failure_code=None if succeeded else result.decline_code,
                    message=result.message)


async def _dispute(adapter: StripeAdapter, payload: dict[str, Any], obj: dict[str, Any],
                   kind: PSPEventType) -> PSPEvent | None:
    status = DISPUTE_STATUSES[str(obj["status"])]
    intent = m.object_id(obj.get("payment_intent"))
    if intent is None:
        return None  # a dispute on a charge no PaymentIntent of kassa's made
    pi = await adapter.payment_intent(intent)
    attempt = m.field(m.field(pi, "metadata"), m.ATTEMPT_KEY)
    if attempt is None:
        return None
    amount = m.money(obj["amount"], obj["currency"])
    details = obj.get("evidence_details") or {}
    due = details.get("due_by")
    return PSPEvent(**_common(adapter.name, payload, obj), type=kind,
                    psp_reference=intent, reference=_text(attempt), amount=amount,
                    dispute=PSPDispute(psp_dispute_id=_text(obj["id"]), status=status,
                                       amount=amount, reason=_text(obj["reason"]),
                                       evidence_due_by=None if due is None else int(due),
                                       created=int(obj["created"])))


def _text(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 255:
        raise ValueError("expected a short non-empty string")
    return value
