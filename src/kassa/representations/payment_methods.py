"""Stripe's payment_method object for a card: what a decline's error and an intent's
``last_payment_error`` carry (brand, last four digits, expiry; never the number)."""

from __future__ import annotations

from typing import Any

_NO_ADDRESS = {"city": None, "country": None, "line1": None, "line2": None,
               "postal_code": None, "state": None}


def payment_method(payment_method_id: str, *, brand: str, last4: str, exp_month: int,
                   exp_year: int, funding: str, country: str | None, created: int
                   ) -> dict[str, Any]:
    """From the card's public facts (services take them from the resolved card)."""
    return {
        "id": payment_method_id,
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {"address": dict(_NO_ADDRESS), "email": None, "name": None,
                            "phone": None, "tax_id": None},
        "card": {
            "brand": brand,
            "checks": {"address_line1_check": None, "address_postal_code_check": None,
                       "cvc_check": None},
            "country": country,
            "display_brand": brand,
            "exp_month": exp_month,
            "exp_year": exp_year,
            "fingerprint": None,  # the vault's keyed fingerprint comes with the vault
            "funding": funding,
            "generated_from": None,
            "last4": last4,
            "networks": {"available": [brand], "preferred": None},
            "regulated_status": "unregulated",
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        },
        "created": created,
        "customer": None,
        "customer_account": None,
        "livemode": False,
        "metadata": {},
        "type": "card",
    }
