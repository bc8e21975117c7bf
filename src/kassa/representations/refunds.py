"""Stripe's refund object."""

from __future__ import annotations

from typing import Any

from kassa.domain.payments import Refund


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
