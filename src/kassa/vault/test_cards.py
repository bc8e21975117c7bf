"""Stripe's test payment-method ids (``pm_card_visa``, …) mapped to the simulator's cards.

This is the seam the vault takes over: today a ``pm_card_*`` id resolves here to a fixed
test card; once the vault stores raw cards (encrypted, tokenised as ``pm_…``), its lookup
replaces or extends this one, and callers keep asking for a ``Card`` by payment-method id.
"""

from __future__ import annotations

from kassa.psp.base import Card

_EXP_MONTH, _EXP_YEAR = 12, 2034


def _card(number: str, brand: str, funding: str = "credit") -> Card:
    return Card(number=number, exp_month=_EXP_MONTH, exp_year=_EXP_YEAR, brand=brand,
                funding=funding)


TEST_PAYMENT_METHODS: dict[str, Card] = {
    "pm_card_visa": _card("4242424242424242", "visa"),
    "pm_card_visa_debit": _card("4000056655665556", "visa", "debit"),
    "pm_card_mastercard": _card("5555555555554444", "mastercard"),
    "pm_card_amex": _card("378282246310005", "amex"),
    "pm_card_discover": _card("6011111111111117", "discover"),
    "pm_card_chargeDeclined": _card("4000000000000002", "visa"),
    "pm_card_chargeDeclinedInsufficientFunds": _card("4000000000009995", "visa"),
    "pm_card_chargeDeclinedLostCard": _card("4000000000009987", "visa"),
    "pm_card_chargeDeclinedStolenCard": _card("4000000000009979", "visa"),
    "pm_card_chargeDeclinedExpiredCard": _card("4000000000000069", "visa"),
    "pm_card_chargeDeclinedIncorrectCvc": _card("4000000000000127", "visa"),
    "pm_card_chargeDeclinedProcessingError": _card("4000000000000119", "visa"),
    "pm_card_authenticationRequired": _card("4000002760003184", "visa"),
    "pm_card_threeDSecure2Required": _card("4000002500003155", "visa"),
    # disputed by the cardholder as soon as the payment is captured
    "pm_card_createDispute": _card("4000000000000259", "visa"),  # fraudulent
    "pm_card_createDisputeProductNotReceived": _card("4000000000002685", "visa"),
    "pm_card_createDisputeInquiry": _card("4000000000001976", "visa"),  # an inquiry first
    # the payment succeeds; each refund succeeds, then fails later (refund.failed)
    "pm_card_refundFail": _card("4000000000005126", "visa"),
}


def lookup_test_payment_method(pm_id: str) -> Card | None:
    """The test card behind a Stripe test payment-method id, or None if it is not one."""
    return TEST_PAYMENT_METHODS.get(pm_id)
