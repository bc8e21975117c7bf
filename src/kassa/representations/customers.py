"""The Stripe Customer of a ``customers`` row (a deleted one: Stripe's deleted object)."""

from __future__ import annotations

from typing import Any


def customer(row: dict[str, Any]) -> dict[str, Any]:
    if row["deleted"]:
        return deleted_customer(row["id"])
    return {
        "id": row["id"],
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": row["created"],
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": row["description"],
        "discount": None,
        "email": row["email"],
        "invoice_prefix": None,
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": row["default_payment_method"],
            "footer": None,
            "rendering_options": None,
        },
        "livemode": row["livemode"],
        "metadata": row["metadata"],
        "name": row["name"],
        "next_invoice_sequence": 1,
        "phone": row["phone"],
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def deleted_customer(customer_id: str) -> dict[str, Any]:
    return {"id": customer_id, "object": "customer", "deleted": True}
