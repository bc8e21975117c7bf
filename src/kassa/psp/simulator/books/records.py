"""The records the books keep: authorizations, operations under idempotency keys, disputes
(dataclasses, stored as they are by store.py), and the views the API answers with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Body = dict[str, Any]

EVIDENCE_DAYS = 7  # how long a merchant has to answer a dispute

OPEN_DISPUTE = frozenset({"warning_needs_response", "warning_under_review", "needs_response",
                          "under_review"})
CHARGEBACK = frozenset({"needs_response", "under_review", "lost"})  # refunds refused


@dataclass(slots=True)
class Authorization:
    id: str
    idempotency_key: str
    merchant_id: str
    amount: int
    currency: str
    capture_requested: bool
    brand: str
    last4: str
    status: str  # requires_action | authorized | captured | declined | voided | expired
    created: int
    amount_captured: int = 0
    amount_refunded: int = 0
    decline_code: str | None = None
    message: str | None = None
    action_url: str | None = None
    return_url: str | None = None
    description: str | None = None
    pending_capture: str | None = None  # key of a capture answered `pending`
    dispute_reason: str | None = None  # the card is disputed once captured
    inquiry: bool = False
    refund_fails: bool = False

    def view(self) -> Body:
        return {
            "id": self.id,
            "object": "authorization",
            "idempotency_key": self.idempotency_key,
            "status": self.status,
            "amount": self.amount,
            "currency": self.currency,
            "amount_captured": self.amount_captured,
            "amount_refunded": self.amount_refunded,
            "capture": self.capture_requested,
            "merchant_id": self.merchant_id,
            "brand": self.brand,
            "last4": self.last4,
            "description": self.description,
            "decline_code": self.decline_code,
            "message": self.message,
            "action_url": self.action_url,
            "created": self.created,
        }

    def summary(self) -> Body:
        """The row of ``GET /_sim/authorizations``."""
        return {
            "id": self.id,
            "idempotency_key": self.idempotency_key,
            "amount": self.amount,
            "currency": self.currency,
            "status": self.status,
            "amount_captured": self.amount_captured,
            "amount_refunded": self.amount_refunded,
            "merchant_id": self.merchant_id,
            "decline_code": self.decline_code,
        }


@dataclass(slots=True)
class Operation:
    """One request received under an idempotency key and the answer it got."""

    kind: str  # authorize | capture | void | refund
    fingerprint: str
    authorization_id: str
    response: Body  # the body answered the first time, replayed verbatim
    current: Body | None = None  # capture/refund: the result now (a pending one settles)


@dataclass(slots=True)
class SimDispute:
    """A cardholder's dispute of one captured authorization."""

    id: str
    authorization_id: str
    authorization_key: str  # the merchant's idempotency key of the authorization
    amount: int
    currency: str
    reason: str
    status: str  # Stripe's dispute statuses
    created: int
    evidence_due_by: int
    evidence: dict[str, str] = field(default_factory=dict)
    submitted: bool = False
    decided: int | None = None  # when it was won, lost or closed (the settlement report's day)

    def view(self) -> Body:
        return {
            "id": self.id,
            "object": "dispute",
            "authorization": self.authorization_id,
            "authorization_idempotency_key": self.authorization_key,
            "amount": self.amount,
            "currency": self.currency,
            "reason": self.reason,
            "status": self.status,
            "evidence": dict(self.evidence),
            "evidence_due_by": self.evidence_due_by,
            "created": self.created,
        }
