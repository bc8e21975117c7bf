"""Charges: each authorisation attempt as Stripe's charge, and what its amounts and outcome
are, derived from the attempt and its payment (no second copy of either to drift).

A payment has at most one successful authorisation (a unique index says so); that charge
carries the payment's money: what was captured, what was refunded of it, and — as at
Stripe — the uncaptured remainder released by a cancel or a partial capture counts as
refunded. Failed and still-open attempts are charges too (``failed``, ``pending``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kassa.domain.payments import AttemptStatus, PaymentIntent, PaymentStatus


@dataclass(frozen=True, slots=True)
class CardFacts:
    """What a charge shows of the card, taken when the attempt is made (never the number)."""

    brand: str
    last4: str
    exp_month: int
    exp_year: int
    funding: str | None = None
    country: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"brand": self.brand, "last4": self.last4, "exp_month": self.exp_month,
                "exp_year": self.exp_year, "funding": self.funding, "country": self.country}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CardFacts:
        return cls(brand=data["brand"], last4=data["last4"], exp_month=data["exp_month"],
                   exp_year=data["exp_year"], funding=data.get("funding"),
                   country=data.get("country"))


@dataclass(frozen=True, slots=True)
class ChargeDetails:
    """The charge's facts fixed at authorisation time (the ``charges`` row)."""

    id: str
    merchant_id: str
    payment_intent_id: str
    payment_method: str | None
    card: CardFacts | None
    receipt_token: str
    created: int
    billing_details: dict[str, Any] | None = None


class ChargeStatus:
    SUCCEEDED = "succeeded"
    PENDING = "pending"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ChargeAmounts:
    status: str
    paid: bool
    amount_captured: int
    amount_refunded: int
    captured: bool
    refunded: bool


def status_of(attempt_status: AttemptStatus) -> str:
    if attempt_status is AttemptStatus.SUCCEEDED:
        return ChargeStatus.SUCCEEDED
    if attempt_status is AttemptStatus.FAILED:
        return ChargeStatus.FAILED
    return ChargeStatus.PENDING  # the PSP's answer (or the customer's 3-D Secure) is awaited


def amounts(attempt_status: AttemptStatus, payment: PaymentIntent) -> ChargeAmounts:
    status = status_of(attempt_status)
    if status != ChargeStatus.SUCCEEDED:
        return ChargeAmounts(status, False, 0, 0, False, False)
    total = payment.amount.minor
    captured = payment.amount_received
    released = 0  # the authorised amount no capture will take any more
    if payment.status is PaymentStatus.CANCELED:
        released = total - captured
    elif payment.status is PaymentStatus.SUCCEEDED:
        released = total - captured  # a partial capture let the rest go
    refunded = payment.amount_refunded + released
    return ChargeAmounts(status, True, captured, refunded, captured > 0, refunded >= total)


# Outcomes by decline code where the card never reached the network (kassa or the PSP
# refused the request itself); every other decline is the issuer's.
NOT_SENT = frozenset({"incorrect_number", "invalid_payment_method"})


def outcome(attempt_status: AttemptStatus, error: dict[str, Any] | None
            ) -> dict[str, Any] | None:
    """Stripe's ``outcome`` (kassa runs no risk scoring: ``risk_level`` is not_assessed)."""
    status = status_of(attempt_status)
    if status == ChargeStatus.PENDING:
        return None
    base = {"advice_code": None, "network_advice_code": None, "network_decline_code": None,
            "risk_level": "not_assessed"}
    if status == ChargeStatus.SUCCEEDED:
        return {**base, "network_status": "approved_by_network", "reason": None,
                "seller_message": "Payment complete.", "type": "authorized"}
    reason = (error or {}).get("decline_code") or (error or {}).get("code")
    if reason in NOT_SENT:
        return {**base, "network_status": "not_sent_to_network", "reason": reason,
                "seller_message": "The payment was refused before it reached the card "
                                  "network.", "type": "invalid"}
    seller = ("The bank did not return any further details with this decline."
              if reason in (None, "generic_decline") else
              f"The bank returned the decline code `{reason}`.")
    return {**base, "network_status": "declined_by_network", "reason": reason,
            "seller_message": seller, "type": "issuer_declined"}


def failure(attempt_status: AttemptStatus, error: dict[str, Any] | None
            ) -> tuple[str | None, str | None]:
    """(failure_code, failure_message) of a failed charge."""
    if attempt_status is not AttemptStatus.FAILED:
        return None, None
    err = error or {}
    return (str(err.get("code") or "card_declined"),
            str(err.get("message") or "Your card was declined."))


def cvc_check(attempt_status: AttemptStatus, error: dict[str, Any] | None) -> str | None:
    """Only what the issuer said: an incorrect_cvc decline failed the check; kassa sends no
    CVC for stored cards, so otherwise it was not checked (null)."""
    if attempt_status is AttemptStatus.FAILED and (error or {}).get("decline_code") == \
            "incorrect_cvc":
        return "fail"
    return None
