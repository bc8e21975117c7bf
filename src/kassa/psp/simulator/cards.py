"""Which outcome the simulator gives a card number: Stripe's test cards, Luhn, brand, expiry."""

from __future__ import annotations

from dataclasses import dataclass

from kassa.domain.cards import luhn_valid


@dataclass(frozen=True, slots=True)
class CardBehaviour:
    """What the simulated issuer does with one card number."""

    decline_code: str | None = None  # None: approve
    message: str | None = None
    requires_3ds: bool = False
    # asks for 3DS on every charge, off-session ones too (declined: authentication_required);
    # otherwise an off-session charge of a card set up before goes through without it
    authenticate_always: bool = False
    dispute_reason: str | None = None  # disputed by the cardholder once captured
    inquiry: bool = False  # the dispute starts as an inquiry (warning_needs_response)
    refund_fails: bool = False  # refunds succeed, then fail later (refund.failed webhook)


APPROVE = CardBehaviour()

# Stripe's documented test numbers (https://docs.stripe.com/testing); any other
# Luhn-valid number is approved, so ordinary-looking cards "just work".
TEST_CARDS: dict[str, CardBehaviour] = {
    "4242424242424242": APPROVE,  # visa
    "4000056655665556": APPROVE,  # visa debit
    "5555555555554444": APPROVE,  # mastercard
    "378282246310005": APPROVE,  # amex
    "6011111111111117": APPROVE,  # discover
    "4000000000000259": CardBehaviour(dispute_reason="fraudulent"),  # disputed after capture
    "4000000000002685": CardBehaviour(dispute_reason="product_not_received"),
    "4000000000001976": CardBehaviour(dispute_reason="fraudulent", inquiry=True),
    "4000000000005126": CardBehaviour(refund_fails=True),  # refunds bounce asynchronously
    "4000000000000002": CardBehaviour("generic_decline", "Your card was declined."),
    "4000000000009995": CardBehaviour("insufficient_funds", "Your card has insufficient funds."),
    "4000000000009987": CardBehaviour("lost_card", "Your card was declined."),
    "4000000000009979": CardBehaviour("stolen_card", "Your card was declined."),
    "4000000000000069": CardBehaviour("expired_card", "Your card has expired."),
    "4000000000000127": CardBehaviour("incorrect_cvc", "Your card's security code is incorrect."),
    "4000000000000119": CardBehaviour(
        "processing_error", "An error occurred while processing your card."
    ),
    "4000002760003184": CardBehaviour(requires_3ds=True, authenticate_always=True),
    "4000002500003155": CardBehaviour(requires_3ds=True),  # 3DS unless set up (off-session)
}

INCORRECT_NUMBER = CardBehaviour("incorrect_number", "Your card number is incorrect.")
EXPIRED = TEST_CARDS["4000000000000069"]


def brand_of(number: str) -> str:
    if len(number) < 4 or not number.isdigit():
        return "unknown"
    if number.startswith("4"):
        return "visa"
    if number[:2] in ("34", "37"):
        return "amex"
    if number[:2] in ("51", "52", "53", "54", "55") or 2221 <= int(number[:4]) <= 2720:
        return "mastercard"
    if number.startswith(("6011", "65")) or 644 <= int(number[:3]) <= 649:
        return "discover"
    return "unknown"


def behaviour_of(number: str, exp_month: int, exp_year: int, *, today: tuple[int, int]
                 ) -> CardBehaviour:
    """The issuer's answer for a card; ``today`` is (year, month)."""
    known = TEST_CARDS.get(number)  # all Luhn-valid, so the common case skips the check
    if known is None and not luhn_valid(number):
        return INCORRECT_NUMBER
    if (exp_year, exp_month) < today:
        return EXPIRED
    return known or APPROVE
