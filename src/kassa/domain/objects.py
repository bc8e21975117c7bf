"""Stripe-shaped representations of domain objects (what the API returns and events carry)."""

from __future__ import annotations

from typing import Any

from kassa.domain.payments import PaymentIntent, Refund


def payment_intent(p: PaymentIntent) -> dict[str, Any]:
    return {
        "id": p.id,
        "object": "payment_intent",
        "amount": p.amount.minor,
        "amount_capturable": p.amount_capturable,
        "amount_received": p.amount_received,
        "amount_refunded": p.amount_refunded,
        "canceled_at": p.canceled_at,
        "cancellation_reason": p.cancellation_reason,
        "capture_method": p.capture_method,
        "created": p.created,
        "currency": p.currency,
        "description": p.description,
        "last_payment_error": p.last_payment_error,
        "latest_charge": p.latest_charge,
        "livemode": False,
        "metadata": p.metadata,
        "next_action": p.next_action,
        "payment_method": p.payment_method,
        "payment_method_types": ["card"],
        "status": p.status.value,
    }


def refund(r: Refund, *, charge: str | None) -> dict[str, Any]:
    return {
        "id": r.id,
        "object": "refund",
        "amount": r.amount.minor,
        "charge": charge,
        "created": r.created,
        "currency": r.amount.currency,
        "failure_reason": r.failure_reason,
        "metadata": r.metadata,
        "payment_intent": r.payment_intent_id,
        "reason": r.reason,
        "status": r.status.value,
    }


def event(*, id: str, type: str, created: int, obj: dict[str, Any],
          previous: dict[str, Any] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"object": obj}
    if previous:
        data["previous_attributes"] = previous
    return {
        "id": id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "data": data,
        "livemode": False,
        "pending_webhooks": 0,
        "type": type,
    }


def charge(p: PaymentIntent, *, charge_id: str, refunded_amount: int | None = None
           ) -> dict[str, Any]:
    """The charge (authorisation attempt) behind a payment, as Stripe's charge object."""
    refunded = p.amount_refunded if refunded_amount is None else refunded_amount
    return {
        "id": charge_id,
        "object": "charge",
        "amount": p.amount.minor,
        "amount_captured": p.amount_received,
        "amount_refunded": refunded,
        "captured": p.amount_received > 0,
        "created": p.created,
        "currency": p.currency,
        "metadata": p.metadata,
        "paid": p.amount_received > 0 or p.amount_capturable > 0,
        "payment_intent": p.id,
        "refunded": p.amount_received > 0 and refunded >= p.amount_received,
        "status": "succeeded",
    }
