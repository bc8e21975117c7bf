"""The Stripe PaymentMethod (type ``card``) of a row of the vault's non-secret table."""

from __future__ import annotations

from typing import Any

_DISPLAY_BRANDS = {"amex": "american_express", "diners": "diners_club",
                   "unionpay": "union_pay", "unknown": "other"}


def payment_method(row: dict[str, Any]) -> dict[str, Any]:
    brand = row["brand"]
    billing = row["billing_details"]
    return {
        "id": row["id"],
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": billing.get("address") or {
                "city": None, "country": None, "line1": None, "line2": None,
                "postal_code": None, "state": None},
            "email": billing.get("email"), "name": billing.get("name"),
            "phone": billing.get("phone"), "tax_id": None,
        },
        "card": {
            "brand": brand,
            "checks": row["checks"],
            "country": row["country"],
            "display_brand": _DISPLAY_BRANDS.get(brand, brand),
            "exp_month": row["exp_month"],
            "exp_year": row["exp_year"],
            "fingerprint": row["fingerprint"],
            "funding": row["funding"],
            "generated_from": None,
            "last4": row["last4"],
            "networks": {"available": [brand], "preferred": None},
            "regulated_status": "unregulated",
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        },
        "created": row["created"],
        "customer": row["customer"],
        "livemode": row["livemode"],
        "metadata": row["metadata"],
        "type": "card",
    }
