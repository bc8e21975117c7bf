"""Stripe's dispute object."""

from __future__ import annotations

from typing import Any

from kassa.domain.disputes import (
    EVIDENCE_FILE_FIELDS,
    EVIDENCE_TEXT_FIELDS,
    RESPONDABLE,
    Dispute,
    DisputeStatus,
)


def dispute(d: Dispute, *, now: int, refundable: int,
            balance_transactions: list[dict[str, Any]]) -> dict[str, Any]:
    """``refundable``: what of the charge is not yet refunded; ``balance_transactions``
    already rendered (``balance.balance_transaction``)."""
    evidence: dict[str, Any] = {name: None for name in sorted(EVIDENCE_TEXT_FIELDS
                                                               | EVIDENCE_FILE_FIELDS)}
    evidence.update(d.evidence)
    evidence["enhanced_evidence"] = {}  # no card network's enhanced programme applies
    past_due = (d.evidence_due_by is not None and now > d.evidence_due_by
                and d.status in RESPONDABLE)
    return {
        "id": d.id,
        "object": "dispute",
        "amount": d.amount.minor,
        "balance_transactions": balance_transactions,
        "charge": d.charge,
        "created": d.created,
        "currency": d.amount.currency,
        "evidence": evidence,
        "enhanced_eligibility_types": [],
        "evidence_details": {
            "due_by": d.evidence_due_by,
            "enhanced_eligibility": {},
            "has_evidence": d.has_evidence,
            "past_due": past_due,
            "submission_count": d.submission_count,
            "submission_method": "manual" if d.submission_count else "not_submitted",
        },
        # an open inquiry can still be settled by refunding; a chargeback already took the
        # money back, so a refund would pay the cardholder twice
        "is_charge_refundable": d.status in (DisputeStatus.WARNING_NEEDS_RESPONSE,
                                             DisputeStatus.WARNING_UNDER_REVIEW)
        and refundable > 0,
        "livemode": False,
        "metadata": d.metadata,
        "payment_intent": d.payment_intent_id,
        "reason": d.reason,
        "status": d.status.value,
    }
