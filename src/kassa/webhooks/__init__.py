"""Merchant webhooks: what a receiver needs to verify them (``construct_event``).

The sender lives in kassa.webhooks.delivery, endpoint rules in kassa.webhooks.endpoints
and the retry schedule in kassa.webhooks.backoff; importing this package loads only the
stdlib-only verifier.
"""

from kassa.webhooks.signing import HEADER as SIGNATURE_HEADER
from kassa.webhooks.verifier import (
    DEFAULT_TOLERANCE,
    SignatureVerificationError,
    construct_event,
    verify_header,
)

__all__ = ["DEFAULT_TOLERANCE", "SIGNATURE_HEADER", "SignatureVerificationError",
           "construct_event", "verify_header"]
