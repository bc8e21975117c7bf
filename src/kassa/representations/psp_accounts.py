"""kassa's psp_account object (an extension: a merchant's own account at a PSP). Its
credentials are write-only: no representation has a place for them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

STRIPE_ACCOUNT = "stripe_account"  # settings' key of a Stripe account's bound acct_… id


def psp_account(row: Mapping[str, Any]) -> dict[str, Any]:
    """From a psp_accounts row (db/psp_accounts.py); ``settings`` holds only what is not
    secret (base_url, merchant_account, hold_validity_days, stripe_account)."""
    return {
        "id": row["id"],
        "object": "psp_account",
        "created": row["created"],
        "currencies": list(row["currencies"]),
        "enabled": row["enabled"],
        "livemode": row["livemode"],
        "psp": row["psp"],
        **{k: row["settings"].get(k) for k in ("base_url", "merchant_account")},
        # null: the PSP's documented validity (services/hold_validity.py)
        "hold_validity_days": row["settings"].get("hold_validity_days"),
        # the Stripe account the key was found to belong to (None: not bound, or not Stripe)
        "stripe_account": row["settings"].get(STRIPE_ACCOUNT),
        "updated": row["updated"],
    }


def deleted_psp_account(account_id: str) -> dict[str, Any]:
    return {"id": account_id, "object": "psp_account", "deleted": True}
