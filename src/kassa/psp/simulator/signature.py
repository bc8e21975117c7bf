"""The simulator's webhook signature: ``Sim-Signature: t=<unix>,v1=<hex>`` where ``v1`` is
HMAC-SHA256(secret, "<t>.<raw body>") — the scheme Stripe uses, so replaying a captured
delivery later fails the timestamp check and editing the body fails the MAC. Several ``v1``
values may be present while a secret is being rotated.

The header is kassa's own webhook header under another name, so its format and parsing
are kassa.webhooks.signing's (stdlib only); this module holds the simulator's policy: the
header name, the tolerance, strict parsing and the error its adapter reports."""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from kassa.webhooks.signing import (
    MalformedHeader,
    compute_signature,
    parse_header,
    signature_header,
)

HEADER = "Sim-Signature"
DEFAULT_TOLERANCE_S = 300


class SignatureError(ValueError):
    """The signature header is missing, malformed, wrong or outside the tolerance."""


def header(secrets: str | Sequence[str], timestamp: int, body: bytes) -> str:
    """The header value signing ``body`` at ``timestamp`` with each secret."""
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    return signature_header(body, keys, timestamp)


def verify(value: str | None, body: bytes, *, secrets: Sequence[str], now: int,
           tolerance_s: int = DEFAULT_TOLERANCE_S) -> int:
    """Check ``value`` against ``body``; returns the signed timestamp or raises."""
    if not secrets:
        raise SignatureError("no webhook signing secret is configured")
    if not value:
        raise SignatureError(f"missing {HEADER} header")
    try:
        parsed = parse_header(value, strict=True)
    except MalformedHeader as exc:
        raise SignatureError(str(exc)) from None
    timestamp = parsed.timestamp
    if timestamp is None or not parsed.signatures:
        raise SignatureError("signature header needs t= and at least one v1=")
    if abs(now - timestamp) > tolerance_s:
        raise SignatureError(f"signature timestamp is outside the {tolerance_s}s tolerance")
    for secret in secrets:
        expected = compute_signature(secret, timestamp, body)
        # compare_digest refuses non-ASCII str; such a candidate cannot match anyway
        if any(c.isascii() and hmac.compare_digest(expected, c) for c in parsed.signatures):
            return timestamp
    raise SignatureError("no signature matches the body")
