"""Stripe's payment_intent object."""

from __future__ import annotations

from typing import Any

from kassa.domain.payments import PaymentIntent


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
