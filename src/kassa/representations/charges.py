"""Stripe's charge object (what ``charge.*`` events carry; there is no /v1/charges route)."""

from __future__ import annotations

from typing import Any

from kassa.domain.payments import PaymentIntent


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
