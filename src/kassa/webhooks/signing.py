"""The Kassa-Signature header: ``t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``.

It is Stripe's scheme byte for byte (the whole ``whsec_…`` string is the HMAC key, the
signed message is the timestamp, a dot and the body exactly as sent), so deliveries also
carry the same value under ``Stripe-Signature`` (per endpoint, on by default) and
``stripe.Webhook.construct_event`` / stripe-node's ``webhooks.constructEvent`` verify them
unmodified, with their default 300 s tolerance against ``t``.

One ``v1`` per secret that is valid at send time (two while a rotation's grace period
runs), so a receiver holding either secret verifies the delivery. Stdlib only: merchants
import this through kassa.webhooks.construct_event.

This is the one implementation of the header's format: the PSP simulator signs and checks
its ``Sim-Signature`` with it too (kassa.psp.simulator.signature).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

HEADER = "Kassa-Signature"
STRIPE_HEADER = "Stripe-Signature"
SCHEME = "v1"
MAX_STRICT_TIMESTAMP_DIGITS = 12  # a unix time until the year 33658


class MalformedHeader(ValueError):
    """A strict parse met a ``t`` item that is not a plain unix timestamp."""


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


def parse_header(header: str, *, strict: bool = False) -> ParsedHeader:
    """Lenient like Stripe's: unknown schemes and malformed items are ignored; the caller
    decides what a missing timestamp or an empty signature list means.

    ``strict`` (the simulator's receiving side) takes values as sent, unstripped, and
    raises MalformedHeader for a ``t`` that is not 1-12 ASCII digits instead of skipping it.
    """
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if not strict:
            value = value.strip()
        if key == "t":
            if value.isascii() and value.isdigit() and (
                    not strict or len(value) <= MAX_STRICT_TIMESTAMP_DIGITS):
                timestamp = int(value)
            elif strict:
                raise MalformedHeader("malformed timestamp in signature header")
        elif key == SCHEME:
            signatures.append(value)
    return ParsedHeader(timestamp, tuple(signatures))
