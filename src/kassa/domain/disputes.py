"""Disputes (chargebacks and inquiries): Stripe's statuses, the transition table and which
money moves on each change (the dispute object the API shows: kassa.representations.disputes).

Money follows the status, never the event that announced it: funds (plus the dispute fee)
leave the merchant when a dispute first reaches a chargeback status and come back, fee
included, when it is won — Stripe's documented behaviour ("if the dispute is ruled in your
favor … Stripe will also refund the network dispute fee", support.stripe.com dispute fees
FAQ). Inquiries (``warning_*``) move no money unless they escalate.

What a dispute can take is bounded by the payment, as at Stripe: a dispute is for at most
the charge amount (a PSP reporting more, or another currency, describes no charge kassa
recorded: the event is refused into the inbox as ``failed`` for an operator), and refunds
made before the chargeback reduce what it withdraws ("once the payment has been fully
refunded, no further funds will be withdrawn … as a result of this dispute", Stripe's
``is_charge_refundable``). Such a dispute is recorded with the amount the PSP reports, so
the merchant sees and can answer it before the deadline, but the ledger withdraws only what
was captured and not refunded (``amount_withdrawn``, possibly 0; the fee is still charged)
and the change is flagged (the inbox note, a warning log, the balance transaction's
description). A refund during an inquiry followed by its escalation is the common case.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from kassa.domain.errors import AmountError, IllegalTransition, InvalidRequest
from kassa.domain.money import EXPONENTS, Money


class DisputeStatus(StrEnum):
    # inquiry (retrieval request): the issuer asks questions, no funds have moved
    WARNING_NEEDS_RESPONSE = "warning_needs_response"
    WARNING_UNDER_REVIEW = "warning_under_review"  # inquiry answered, issuer reviewing
    WARNING_CLOSED = "warning_closed"  # inquiry ended without a chargeback (terminal)
    NEEDS_RESPONSE = "needs_response"  # chargeback: funds withdrawn, evidence due
    UNDER_REVIEW = "under_review"  # evidence submitted, the issuer decides
    WON = "won"  # terminal: amount and fee returned to the merchant
    LOST = "lost"  # terminal: the funds stay with the cardholder


D = DisputeStatus

# Forward moves only. A PSP may skip steps (an issuer can decide without a review, and an
# event delivered late is superseded by a newer one), so every later stage is reachable.
DISPUTE_TRANSITIONS: frozenset[tuple[DisputeStatus, DisputeStatus]] = frozenset(
    {
        *((D.WARNING_NEEDS_RESPONSE, dst) for dst in (
            D.WARNING_UNDER_REVIEW, D.WARNING_CLOSED, D.NEEDS_RESPONSE, D.UNDER_REVIEW, D.WON,
            D.LOST)),
        *((D.WARNING_UNDER_REVIEW, dst) for dst in (
            D.WARNING_CLOSED, D.NEEDS_RESPONSE, D.UNDER_REVIEW, D.WON, D.LOST)),
        (D.NEEDS_RESPONSE, D.UNDER_REVIEW),
        (D.NEEDS_RESPONSE, D.WON),
        (D.NEEDS_RESPONSE, D.LOST),
        (D.UNDER_REVIEW, D.WON),
        (D.UNDER_REVIEW, D.LOST),
    }
)

CHARGEBACK = frozenset({D.NEEDS_RESPONSE, D.UNDER_REVIEW, D.WON, D.LOST})  # funds withdrawn
CLOSED = frozenset({D.WARNING_CLOSED, D.WON, D.LOST})
RESPONDABLE = frozenset({D.WARNING_NEEDS_RESPONSE, D.NEEDS_RESPONSE})  # evidence accepted

REASONS = frozenset(
    """bank_cannot_process check_returned credit_not_processed customer_initiated
    debit_not_authorized duplicate fraudulent general incorrect_account_details
    insufficient_funds noncompliant product_not_received product_unacceptable
    subscription_canceled unrecognized""".split()
)

# Stripe's text evidence fields; file evidence (receipt, shipping_documentation, …) is not
# supported and shows as null.
EVIDENCE_TEXT_FIELDS = frozenset(
    """access_activity_log billing_address cancellation_policy_disclosure cancellation_rebuttal
    customer_email_address customer_name customer_purchase_ip duplicate_charge_explanation
    duplicate_charge_id product_description refund_policy_disclosure refund_refusal_explanation
    service_date shipping_address shipping_carrier shipping_date shipping_tracking_number
    uncategorized_text""".split()
)
EVIDENCE_FILE_FIELDS = frozenset(
    """cancellation_policy customer_communication customer_signature
    duplicate_charge_documentation receipt refund_policy service_documentation
    shipping_documentation uncategorized_file""".split()
)
MAX_EVIDENCE_CHARS = 150_000  # Stripe's limit on all text evidence of one dispute combined

DISPUTE_FEE_MAJOR_CENTS = 1500  # 15.00 in a two-decimal currency, scaled by exponent


def dispute_fee(currency: str) -> Money:
    """The fee a chargeback costs the merchant (Stripe's US fee, 15 units of the currency)."""
    return Money(DISPUTE_FEE_MAJOR_CENTS * 10 ** EXPONENTS[currency] // 100, currency)


@dataclass(frozen=True, slots=True)
class DisputeChange:
    """What one change did: the status before (None: the dispute is new), and the money."""

    previous: DisputeStatus | None
    status: DisputeStatus
    withdraw: bool  # post the chargeback: amount + fee leave the merchant
    reinstate: bool  # post its reversal: amount + fee come back

    @property
    def event_types(self) -> list[str]:
        """The merchant-facing events, in the order Stripe sends them."""
        types = []
        if self.previous is None:
            types.append("charge.dispute.created")
        if self.withdraw:
            types.append("charge.dispute.funds_withdrawn")
        if self.status in CLOSED and self.previous is not self.status:
            types.append("charge.dispute.closed")
        elif self.previous is not None:
            types.append("charge.dispute.updated")
        if self.reinstate:
            types.append("charge.dispute.funds_reinstated")
        return types


def _change(previous: DisputeStatus | None, status: DisputeStatus) -> DisputeChange:
    was_withdrawn = previous is not None and previous in CHARGEBACK
    return DisputeChange(
        previous=previous, status=status,
        withdraw=status in CHARGEBACK and not was_withdrawn,
        reinstate=status is D.WON and previous is not D.WON,
    )


@dataclass(slots=True)
class Dispute:
    id: str
    merchant_id: str
    payment_intent_id: str
    charge: str
    psp: str
    psp_dispute_id: str
    amount: Money
    fee: Money
    status: DisputeStatus
    reason: str
    created: int
    evidence: dict[str, str] = field(default_factory=dict)
    evidence_due_by: int | None = None
    submission_count: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    withdrawal_balance_transaction: str | None = None
    reinstatement_balance_transaction: str | None = None
    # what the chargeback took from the merchant (None until it did): the amount, bounded
    # by what of the payment was captured and not refunded at that moment
    amount_withdrawn: Money | None = None
    version: int = 0

    @property
    def funds_withdrawn(self) -> bool:
        return self.status in CHARGEBACK

    @property
    def has_evidence(self) -> bool:
        return any(self.evidence.values())

    @property
    def withdrawal_bounded(self) -> bool:
        """The chargeback withdrew less than the disputed amount (refunds came first)."""
        return self.amount_withdrawn is not None and self.amount_withdrawn < self.amount

    def record_withdrawal(self, disputable: Money) -> Money:
        """Fix what the chargeback withdraws, given what of the payment is captured and not
        refunded (``disputable``): the disputed amount, never more than that (module
        docstring). Called once, by whoever posts a change that withdraws."""
        if disputable.currency != self.amount.currency:
            raise AmountError(f"dispute currency {self.amount.currency} differs from the "
                              f"payment's {disputable.currency}", param="amount")
        self.amount_withdrawn = Money(max(0, min(self.amount.minor, disputable.minor)),
                                      self.amount.currency)
        return self.amount_withdrawn

    def withdrawal_note(self) -> str | None:
        """Why the chargeback withdrew less than the disputed amount (None: it did not)."""
        if self.amount_withdrawn is None or not self.withdrawal_bounded:
            return None
        return (f"bounded: withdrew {self.amount_withdrawn.minor} of the disputed "
                f"{self.amount.minor} {self.amount.currency}; the rest of the payment was "
                "refunded before the chargeback")

    # --- commands ------------------------------------------------------------------

    def psp_status(self, status: DisputeStatus, *, evidence_due_by: int | None
                   ) -> DisputeChange | None:
        """The PSP reports the dispute in ``status``; None when nothing changed."""
        if evidence_due_by is not None:
            self.evidence_due_by = evidence_due_by
        if status is self.status:
            return None
        if (self.status, status) not in DISPUTE_TRANSITIONS:
            raise IllegalTransition(self.status.value, status.value, obj="Dispute")
        change = _change(self.status, status)
        self.status = status
        return change

    def update_evidence(self, evidence: Mapping[str, str], *, submit: bool, now: int
                        ) -> DisputeChange | None:
        """Merge text evidence (an empty value unsets a field); ``submit`` sends it to the
        issuer, after which the evidence is final."""
        if self.status not in RESPONDABLE:
            raise IllegalTransition(self.status.value, self.status.value,
                                    action="update the evidence of", obj="Dispute")
        for name, value in evidence.items():
            if name in EVIDENCE_FILE_FIELDS:
                raise InvalidRequest(f"File evidence is not supported: evidence[{name}].",
                                     param=f"evidence[{name}]")
            if name not in EVIDENCE_TEXT_FIELDS:
                raise InvalidRequest(f"Received unknown parameter: evidence[{name}]",
                                     param=f"evidence[{name}]", code="parameter_unknown")
            if not isinstance(value, str):
                raise InvalidRequest(f"Invalid evidence[{name}]: must be a string",
                                     param=f"evidence[{name}]")
        merged = {**self.evidence, **evidence}
        merged = {k: v for k, v in merged.items() if v}
        if sum(len(v) for v in merged.values()) > MAX_EVIDENCE_CHARS:
            raise InvalidRequest(f"Evidence text may be at most {MAX_EVIDENCE_CHARS} characters "
                                 "combined.", param="evidence")
        if submit and self.evidence_due_by is not None and now > self.evidence_due_by:
            raise InvalidRequest("The deadline for submitting evidence for this dispute has "
                                 "passed.", param="submit", code="dispute_evidence_past_due")
        self.evidence = merged
        if not submit:
            return None
        dst = D.UNDER_REVIEW if self.status is D.NEEDS_RESPONSE else D.WARNING_UNDER_REVIEW
        change = _change(self.status, dst)
        self.status = dst
        self.submission_count += 1
        return change

    def accept(self) -> DisputeChange:
        """The merchant concedes (Stripe's ``close``): the dispute is lost."""
        if self.status not in RESPONDABLE:
            raise IllegalTransition(self.status.value, D.LOST.value, action="close",
                                    obj="Dispute")
        change = _change(self.status, D.LOST)
        self.status = D.LOST
        return change


def open_from_psp(*, dispute_id: str, merchant_id: str, payment_intent_id: str, charge: str,
                  amount_received: Money, psp: str, psp_dispute_id: str, amount: Money,
                  reason: str, status: DisputeStatus, evidence_due_by: int | None,
                  created: int) -> tuple[Dispute, DisputeChange]:
    """A dispute the PSP reports for the first time, in whatever status it has reached."""
    if amount.currency != amount_received.currency:
        raise AmountError(f"dispute currency {amount.currency} differs from the payment's "
                          f"{amount_received.currency}", param="amount")
    if not 0 < amount.minor <= amount_received.minor:
        raise AmountError(f"disputed amount {amount.minor} is not within the captured "
                          f"{amount_received.minor}", param="amount")
    d = Dispute(
        id=dispute_id, merchant_id=merchant_id, payment_intent_id=payment_intent_id,
        charge=charge, psp=psp, psp_dispute_id=psp_dispute_id, amount=amount,
        fee=dispute_fee(amount.currency), status=status,
        reason=reason if reason in REASONS else "general", created=created,
        evidence_due_by=evidence_due_by)
    return d, _change(None, status)

