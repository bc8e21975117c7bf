"""The Kassa-Signature header: ``t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``.

One ``v1`` per secret that is valid at send time (two while a rotation's grace period
runs), so a receiver holding either secret verifies the delivery. Stdlib only: merchants
import this through kassa.webhooks.construct_event.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

HEADER = "Kassa-Signature"
SCHEME = "v1"


def compute_signature(secret: str, timestamp: int, payload: bytes) -> str:
    """Hex HMAC-SHA256 of ``"<timestamp>.<payload>"`` keyed with the whole secret string."""
    message = str(timestamp).encode() + b"." + payload
    return hmac.digest(secret.encode(), message, hashlib.sha256).hex()  # one-shot: C speed


def signature_header(payload: bytes, secrets: Iterable[str], timestamp: int) -> str:
    parts = [f"t={timestamp}"]
    parts.extend(f"{SCHEME}={compute_signature(s, timestamp, payload)}" for s in secrets)
    return ",".join(parts)


@dataclass(frozen=True, slots=True)
class ParsedHeader:
    timestamp: int | None
    signatures: tuple[str, ...]  # the v1 values, in order


def parse_header(header: str) -> ParsedHeader:
    """Lenient like Stripe's: unknown schemes and malformed items are ignored; the caller
    decides what a missing timestamp or an empty signature list means."""
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            value = value.strip()
            if value.isascii() and value.isdigit():
                timestamp = int(value)
        elif key == SCHEME:
            signatures.append(value.strip())
    return ParsedHeader(timestamp, tuple(signatures))
