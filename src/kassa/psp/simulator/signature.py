"""The simulator's webhook signature: ``Sim-Signature: t=<unix>,v1=<hex>`` where ``v1`` is
HMAC-SHA256(secret, "<t>.<raw body>") — the scheme Stripe uses, so replaying a captured
delivery later fails the timestamp check and editing the body fails the MAC. Several ``v1``
values may be present while a secret is being rotated."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

HEADER = "Sim-Signature"
DEFAULT_TOLERANCE_S = 300


class SignatureError(ValueError):
    """The signature header is missing, malformed, wrong or outside the tolerance."""


def compute(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def header(secrets: str | Sequence[str], timestamp: int, body: bytes) -> str:
    """The header value signing ``body`` at ``timestamp`` with each secret."""
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    return ",".join([f"t={timestamp}", *(f"v1={compute(k, timestamp, body)}" for k in keys)])


def verify(value: str | None, body: bytes, *, secrets: Sequence[str], now: int,
           tolerance_s: int = DEFAULT_TOLERANCE_S) -> int:
    """Check ``value`` against ``body``; returns the signed timestamp or raises."""
    if not secrets:
        raise SignatureError("no webhook signing secret is configured")
    if not value:
        raise SignatureError(f"missing {HEADER} header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in value.split(","):
        name, sep, item = part.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            if not item.isascii() or not item.isdigit() or len(item) > 12:
                raise SignatureError("malformed timestamp in signature header")
            timestamp = int(item)
        elif name == "v1":
            candidates.append(item)
    if timestamp is None or not candidates:
        raise SignatureError("signature header needs t= and at least one v1=")
    if abs(now - timestamp) > tolerance_s:
        raise SignatureError(f"signature timestamp is outside the {tolerance_s}s tolerance")
    for secret in secrets:
        expected = compute(secret, timestamp, body)
        # compare_digest refuses non-ASCII str; such a candidate cannot match anyway
        if any(c.isascii() and hmac.compare_digest(expected, c) for c in candidates):
            return timestamp
    raise SignatureError("no signature matches the body")
