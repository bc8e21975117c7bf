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
    "fx_rate": "fxr",  # a stored exchange rate (domain/fx.py)
}


# two base62 digits per division (lowest first, as one digit at a time would give them):
# half the divisions of the hot path that names every object and request
_PAIRS = [ALPHABET[r % 62] + ALPHABET[r // 62] for r in range(62 * 62)]


def base62(raw: bytes, length: int = 24) -> str:
    """``length`` (even) base62 characters of ``raw``, lowest digit first."""
    n = int.from_bytes(raw, "big")
    pairs = []
    for _ in range(length // 2):
        n, r = divmod(n, 3844)
        pairs.append(_PAIRS[r])
    return "".join(pairs)


def encode(prefix: str, raw: bytes) -> str:
    """Render 18 random bytes as ``<prefix>_<24 base62 chars>``."""
    return f"{prefix}_{base62(raw)}"
