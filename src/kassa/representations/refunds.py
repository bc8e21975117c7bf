"""Stripe's refund object."""

from __future__ import annotations

from typing import Any

from kassa.domain.payments import Refund


def refund(r: Refund, *, charge: str | None, payment_method: str | None = None
           ) -> dict[str, Any]:
    """Every field Stripe always returns, null when kassa has no value; ``failure_reason``
    only once the refund failed, as Stripe does."""
    obj: dict[str, Any] = {
        "id": r.id,
        "object": "refund",
        "amount": r.amount.minor,
        "balance_transaction": None,
        "charge": charge,
        "created": r.created,
        "currency": r.amount.currency,
        "customer": None,
        "customer_account": None,
        "metadata": r.metadata,
        "payment_intent": r.payment_intent_id,
        "payment_method": payment_method,
        "reason": r.reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": r.status.value,
        "transfer_reversal": None,
    }
    if r.failure_reason is not None:
        obj["failure_reason"] = r.failure_reason
    return obj
