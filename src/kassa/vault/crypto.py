"""Envelope encryption of card numbers: each PAN is sealed with AES-256-GCM under its own
data key, and the data key is wrapped by a key-encryption key (keyring.py).

The associated data binds each ciphertext to its place: a PAN to its payment method and
merchant, a wrapped data key to its id, merchant, purpose and KEK version. A ciphertext
copied onto another row, another merchant or another version fails to authenticate instead
of decrypting to the wrong card. The card fingerprint is an HMAC-SHA256 of the PAN under a
per-merchant key (PCI DSS 3.5.1.1: keyed), so it says "same card" within a merchant and
nothing about the number.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kassa.domain import ids
from kassa.vault.keyring import KEY_BYTES, NONCE_BYTES
from kassa.vault.secret import CardNumber

FINGERPRINT_CHARS = 16  # as Stripe's card.fingerprint


class DecryptionFailed(Exception):
    """A sealed PAN did not authenticate (tampered, or moved to another row)."""


def new_data_key() -> bytes:
    return os.urandom(KEY_BYTES)


def data_key_aad(*, data_key_id: str, merchant_id: str, purpose: str) -> bytes:
    return f"kassa-vault/data-key|{data_key_id}|{merchant_id}|{purpose}".encode()


def card_aad(*, payment_method_id: str, merchant_id: str) -> bytes:
    return f"kassa-vault/pan|{payment_method_id}|{merchant_id}".encode()


def seal(data_key: bytes, number: CardNumber, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(data_key).encrypt(nonce, number.reveal().encode(), aad)


def open_sealed(data_key: bytes, sealed: bytes, aad: bytes) -> CardNumber:
    try:
        plain = AESGCM(data_key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
    except (InvalidTag, ValueError):
        raise DecryptionFailed("the card number did not authenticate") from None
    return CardNumber(plain.decode())


def request_mac(key: bytes, params: dict[str, Any]) -> bytes:
    """What tells one POST /v1/payment_methods from another under an Idempotency-Key,
    keyed per merchant as the fingerprint is (the request holds a card number)."""
    canonical = orjson.dumps(params, option=orjson.OPT_SORT_KEYS)
    return hmac.new(key, b"kassa-vault/idempotency|" + canonical, hashlib.sha256).digest()


def fingerprint(key: bytes, number: CardNumber) -> str:
    digest = hmac.new(key, b"kassa-vault/fingerprint|" + number.reveal().encode(),
                      hashlib.sha256).digest()
    return ids.encode("", digest[:18])[1:FINGERPRINT_CHARS + 1]
