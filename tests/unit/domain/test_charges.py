"""A charge's amounts and outcome, derived from its attempt and its payment."""

from __future__ import annotations

import pytest

from kassa.domain import charges
from kassa.domain.money import Money
from kassa.domain.payments import AttemptStatus, PaymentIntent, PaymentStatus

S = AttemptStatus


def payment(status: PaymentStatus, *, received: int = 0, refunded: int = 0) -> PaymentIntent:
    return PaymentIntent(id="pi_1", merchant_id="acct_1", amount=Money(1000, "usd"),
                         status=status, capture_method="manual", created=1,
                         amount_received=received, amount_refunded=refunded)


@pytest.mark.parametrize(("attempt", "p", "expected"), [
    # authorised, not captured yet
    (S.SUCCEEDED, payment(PaymentStatus.REQUIRES_CAPTURE), ("succeeded", True, 0, 0, False,
                                                           False)),
    (S.SUCCEEDED, payment(PaymentStatus.SUCCEEDED, received=1000), ("succeeded", True, 1000, 0,
                                                                    True, False)),
    # a partial capture releases the rest, counted as refunded (as Stripe shows it)
    (S.SUCCEEDED, payment(PaymentStatus.SUCCEEDED, received=600, refunded=100),
     ("succeeded", True, 600, 500, True, False)),
    (S.SUCCEEDED, payment(PaymentStatus.SUCCEEDED, received=600, refunded=600),
     ("succeeded", True, 600, 1000, True, True)),
    # canceled with the hold released: all of it refunded, nothing captured
    (S.SUCCEEDED, payment(PaymentStatus.CANCELED), ("succeeded", True, 0, 1000, False, True)),
    # a capture or void in flight changes nothing yet
    (S.SUCCEEDED, payment(PaymentStatus.PROCESSING), ("succeeded", True, 0, 0, False, False)),
    # an earlier declined attempt of a payment that later succeeded carries no money
    (S.FAILED, payment(PaymentStatus.SUCCEEDED, received=1000), ("failed", False, 0, 0, False,
                                                                 False)),
    (S.REQUIRES_ACTION, payment(PaymentStatus.REQUIRES_ACTION), ("pending", False, 0, 0, False,
                                                                 False)),
    (S.UNKNOWN, payment(PaymentStatus.PROCESSING), ("pending", False, 0, 0, False, False)),
])
def test_amounts(attempt, p, expected):
    a = charges.amounts(attempt, p)
    assert (a.status, a.paid, a.amount_captured, a.amount_refunded, a.captured,
            a.refunded) == expected


def test_outcomes():
    assert charges.outcome(S.STARTED, None) is None
    ok = charges.outcome(S.SUCCEEDED, None)
    assert ok is not None and (ok["network_status"], ok["type"], ok["reason"]) == (
        "approved_by_network", "authorized", None)
    assert ok["risk_level"] == "not_assessed"  # kassa scores no risk: nothing invented
    declined = charges.outcome(S.FAILED, {"code": "card_declined",
                                          "decline_code": "insufficient_funds"})
    assert declined is not None and (declined["network_status"], declined["type"],
                                     declined["reason"]) == (
        "declined_by_network", "issuer_declined", "insufficient_funds")
    assert "insufficient_funds" in declined["seller_message"]
    invalid = charges.outcome(S.FAILED, {"code": "card_declined",
                                         "decline_code": "invalid_payment_method"})
    assert invalid is not None and (invalid["network_status"], invalid["type"]) == (
        "not_sent_to_network", "invalid")


def test_failure_and_cvc_check():
    err = {"code": "incorrect_cvc", "decline_code": "incorrect_cvc",
           "message": "Your card's security code is incorrect."}
    assert charges.failure(S.FAILED, err) == ("incorrect_cvc",
                                              "Your card's security code is incorrect.")
    assert charges.failure(S.SUCCEEDED, None) == (None, None)
    assert charges.cvc_check(S.FAILED, err) == "fail"
    assert charges.cvc_check(S.SUCCEEDED, None) is None  # no CVC sent: not checked


def test_card_facts_round_trip():
    facts = charges.CardFacts(brand="visa", last4="4242", exp_month=12, exp_year=2034,
                              funding="credit", country="US")
    assert charges.CardFacts.from_json(facts.to_json()) == facts
