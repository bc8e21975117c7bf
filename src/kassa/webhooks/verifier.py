"""Merchant-side verification of kassa webhooks, with the contract of Stripe's
``Webhook.construct_event``: verify the Kassa-Signature header, then parse the event.

    from kassa.webhooks import construct_event, SignatureVerificationError

    try:
        event = construct_event(request_body, headers["Kassa-Signature"], "whsec_...")
    except SignatureVerificationError:
        return 400

Stdlib only, so a receiver can depend on this module without kassa's server stack.
"""

from __future__ import annotations

import hmac
import json
import time
from typing import Any

from kassa.webhooks.signing import compute_signature, parse_header

DEFAULT_TOLERANCE = 300  # seconds; Stripe's default


class SignatureVerificationError(Exception):
    """The payload is not a genuine, recent kassa webhook (missing, malformed, wrong or
    stale signature). Answer it with a 4xx and do not act on it."""

    def __init__(self, message: str, sig_header: str | None = None,
                 http_body: str | bytes | None = None) -> None:
        super().__init__(message)
        self.sig_header = sig_header
        self.http_body = http_body


def verify_header(payload: str | bytes, sig_header: str | None, secret: str,
                  tolerance: int | None = DEFAULT_TOLERANCE, *,
                  now: float | None = None) -> bool:
    """True if any ``v1`` signature in the header matches ``secret`` and (with a tolerance)
    the timestamp is no older than ``tolerance`` seconds; raises otherwise."""
    body = payload.encode() if isinstance(payload, str) else bytes(payload)
    if not sig_header:
        raise SignatureVerificationError("No signatures found matching the expected "
                                         "signature for payload: missing Kassa-Signature "
                                         "header", sig_header, payload)
    parsed = parse_header(sig_header)
    if parsed.timestamp is None:
        raise SignatureVerificationError("Unable to extract timestamp and signatures from "
                                         "header", sig_header, payload)
    if not parsed.signatures:
        raise SignatureVerificationError("No signatures found with expected scheme v1",
                                         sig_header, payload)
    expected = compute_signature(secret, parsed.timestamp, body).encode()
    # compare against every v1 (no early exit: the time taken reveals nothing)
    matched = False
    for candidate in parsed.signatures:
        matched |= hmac.compare_digest(expected, candidate.encode())
    if not matched:
        raise SignatureVerificationError("No signatures found matching the expected "
                                         "signature for payload", sig_header, payload)
    current = time.time() if now is None else now
    if tolerance and parsed.timestamp < current - tolerance:
        raise SignatureVerificationError("Timestamp outside the tolerance zone "
                                         f"({parsed.timestamp})", sig_header, payload)
    return True


def construct_event(payload: str | bytes, sig_header: str | None, secret: str,
                    tolerance: int | None = DEFAULT_TOLERANCE) -> dict[str, Any]:
    """Verify, then return the event as a dict; raises SignatureVerificationError on a
    missing, bad or stale signature and ValueError if a correctly signed body is not JSON."""
    verify_header(payload, sig_header, secret, tolerance)
    text = payload.decode("utf-8") if isinstance(payload, bytes | bytearray) else payload
    event = json.loads(text)
    if not isinstance(event, dict):
        raise ValueError("the webhook payload is not a JSON object")
    return event
