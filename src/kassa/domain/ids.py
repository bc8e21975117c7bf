"""Stripe-style object ids: a prefix and 24 random base62 characters supplied by the caller."""

from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

PREFIXES = {
    "payment_intent": "pi",
    "charge": "ch",  # an authorisation attempt
    "attempt": "att",  # capture / void / refund attempts
    "refund": "re",
    "event": "evt",
    "merchant": "acct",
    "balance_transaction": "txn",
    "payout": "po",
    "bank_account": "ba",  # a payout destination
    "reconciliation_run": "recon",  # its discrepancies: rdsc_<the run's 24>_<row>
}


def encode(prefix: str, raw: bytes) -> str:
    """Render 18 random bytes as ``<prefix>_<24 base62 chars>``."""
    n = int.from_bytes(raw, "big")
    chars = []
    for _ in range(24):
        n, r = divmod(n, 62)
        chars.append(ALPHABET[r])
    return f"{prefix}_{''.join(chars)}"
