"""Checkout tokens: what the hosted checkout page presents to the vault instead of a
publishable key (kassa keeps only hashes of those, so it cannot put one in a page).

A token names the merchant and the intent it was minted for and expires; it is an HMAC
under a key of its own, derived from ``KASSA_CHECKOUT_TOKEN_SECRET`` and from nothing
else: every page carries a token, so anyone may try to guess its key offline, and a secret
that keyed something more (the vault's forward token) would be guessed with it. While the
secret rotates, tokens signed with ``KASSA_CHECKOUT_TOKEN_SECRET_PREVIOUS`` still verify
(none is signed with it). A token lets its holder tokenise cards for that merchant at the
vault — what a publishable key allows — and nothing else; it is minted only while its
intent can take a card (services/checkout.py) and lives 30 minutes."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence

PREFIX = "kct_"
TTL_SECONDS = 1800  # a page left open longer is reloaded (a new token) to pay
_LABEL = b"kassa checkout token v1"
_SHAPE = re.compile(r"^kct_(acct_[0-9A-Za-z]{1,64})\.(pi_[0-9A-Za-z]{1,64})\.([0-9]{1,12})\."
                    r"([0-9a-f]{64})$")


def signing_key(secret: str) -> bytes:
    return hmac.new(secret.encode(), _LABEL, hashlib.sha256).digest()


def verifying_keys(secrets: Sequence[str]) -> tuple[bytes, ...]:
    """The keys a token may be signed with: the current secret's, then the previous one's."""
    return tuple(signing_key(s) for s in secrets)


def _mac(key: bytes, merchant_id: str, payment_id: str, expires: int) -> str:
    message = f"{merchant_id}.{payment_id}.{expires}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def mint(key: bytes, *, merchant_id: str, payment_id: str, now: int,
         ttl: int = TTL_SECONDS) -> str:
    expires = now + ttl
    mac = _mac(key, merchant_id, payment_id, expires)
    return f"{PREFIX}{merchant_id}.{payment_id}.{expires}.{mac}"


def merchant_of(keys: Sequence[bytes], token: str, *, now: int) -> str | None:
    """The merchant a valid, unexpired token was minted for under one of ``keys``; None
    for anything else."""
    match = _SHAPE.match(token)
    if match is None:
        return None
    merchant_id, payment_id, expires, mac = match.groups()
    if not any(hmac.compare_digest(mac, _mac(key, merchant_id, payment_id, int(expires)))
               for key in keys):
        return None
    return merchant_id if int(expires) > now else None
