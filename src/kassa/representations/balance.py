"""Stripe's balance and balance_transaction objects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def balance(*, available: Mapping[str, int], pending: Mapping[str, int]) -> dict[str, Any]:
    """From the merchant's available and pending amounts by currency (as the merchant sees
    them: positive is money kassa owes the merchant)."""
    currencies = sorted(set(available) | set(pending))
    return {
        "object": "balance",
        "livemode": False,
        "available": [{"amount": available.get(c, 0), "currency": c,
                       "source_types": {"card": available.get(c, 0)}} for c in currencies],
        "pending": [{"amount": pending.get(c, 0), "currency": c,
                     "source_types": {"card": pending.get(c, 0)}} for c in currencies],
    }


# Stripe's reporting_category where it is not the type itself
_REPORTING_CATEGORIES = {"payout_cancel": "payout_reversal", "payout_failure": "payout_reversal"}


def _rate(value: Any) -> float | None:
    # Stripe's JSON number (typed SDKs decode it as a float); the exact NUMERIC stays in the
    # database and the ledger, and a rate of up to 15 significant digits prints unchanged
    return None if value is None else float(value)


def balance_transaction(row: Mapping[str, Any]) -> dict[str, Any]:
    """From a balance_transactions row (or a dict of its columns not committed yet)."""
    return {
        "id": row["id"], "object": "balance_transaction", "amount": row["amount"],
        "available_on": row["available_on"], "created": row["created"],
        "currency": row["currency"], "description": row["description"],
        # Stripe's: the payment's amount times this rate is ``amount`` (null: not converted)
        "exchange_rate": _rate(row.get("exchange_rate")), "fee": row["fee"],
        "fee_details": ([{"amount": row["fee"], "currency": row["currency"],
                          "description": "kassa processing fees", "type": "stripe_fee"}]
                        if row["fee"] else []),
        "balance_type": "payments",
        "net": row["net"],
        "reporting_category": _REPORTING_CATEGORIES.get(row["type"], row["type"]),
        "source": row["source"],
        "status": row["status"], "type": row["type"],
    }
