"""Card data as it arrives at the vault: the number's Luhn check, brand, expiry and CVC
checked with Stripe's error codes, and what Stripe's test cards say of funding and country.

Errors are card errors (HTTP 402, ``type=card_error``) with Stripe's codes; their messages
never contain what was sent."""

from __future__ import annotations

from dataclasses import dataclass

from kassa.domain.cards import luhn_valid
from kassa.domain.errors import CardError, InvalidRequest
from kassa.vault.secret import CardNumber, Secret


class CardInvalid(CardError):
    """A card number, expiry or CVC that cannot be a real card (nothing was stored)."""

    def __init__(self, message: str, *, code: str, param: str) -> None:
        super().__init__(message, decline_code=None, code=code)
        self.param = param


@dataclass(frozen=True, slots=True)
class CardInput:
    """A validated card, its number and CVC still secrets."""

    number: CardNumber
    exp_month: int
    exp_year: int
    brand: str
    cvc: Secret | None

    @property
    def funding(self) -> str:
        found = TEST_CARD_DETAILS.get(self.number.reveal())
        return found[0] if found else "unknown"

    @property
    def country(self) -> str | None:
        found = TEST_CARD_DETAILS.get(self.number.reveal())
        return found[1] if found else None


# Stripe's documented test numbers (https://docs.stripe.com/testing): funding and country,
# which a real vault would read from a BIN table it licenses; other numbers are "unknown".
TEST_CARD_DETAILS: dict[str, tuple[str, str | None]] = {
    "4242424242424242": ("credit", "US"),
    "4000056655665556": ("debit", "US"),
    "5555555555554444": ("credit", "US"),
    "2223003122003222": ("credit", "US"),
    "5200828282828210": ("debit", "US"),
    "5105105105105100": ("prepaid", "US"),
    "378282246310005": ("credit", "US"),
    "371449635398431": ("credit", "US"),
    "6011111111111117": ("credit", "US"),
    "6011000990139424": ("credit", "US"),
    "3056930009020004": ("credit", "US"),
    "36227206271667": ("credit", "US"),
    "3566002020360505": ("credit", "JP"),
    "6200000000000005": ("credit", "CN"),
    "4000000000000002": ("credit", "US"),
    "4000000000009995": ("credit", "US"),
    "4000000000009987": ("credit", "US"),
    "4000000000009979": ("credit", "US"),
    "4000000000000069": ("credit", "US"),
    "4000000000000127": ("credit", "US"),
    "4000000000000119": ("credit", "US"),
    "4000002760003184": ("credit", "US"),
    "4000002500003155": ("credit", "US"),
    "4000000000000259": ("credit", "US"),
    "4000000000002685": ("credit", "US"),
    "4000000000001976": ("credit", "US"),
    "4000000000005126": ("credit", "US"),
    "4000000000000077": ("credit", "US"),
}


def brand_of(digits: str) -> str:
    """Stripe's brand names by IIN range (amex, diners, discover, jcb, mastercard,
    unionpay, visa, unknown)."""
    two, four = int(digits[:2]), int(digits[:4])
    if digits.startswith("4"):
        return "visa"
    if two in (34, 37):
        return "amex"
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return "mastercard"
    if digits.startswith(("6011", "65")) or 644 <= int(digits[:3]) <= 649:
        return "discover"
    if 3528 <= four <= 3589:
        return "jcb"
    if two in (36, 38, 39) or 300 <= int(digits[:3]) <= 305:
        return "diners"
    if two == 62:
        return "unionpay"
    return "unknown"


def _integer(value: object, *, code: str, param: str, message: str) -> int:
    if isinstance(value, bool):
        raise CardInvalid(message, code=code, param=param)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 4:
        return int(value.strip())
    raise CardInvalid(message, code=code, param=param)


def validate_card(raw: object, *, today: tuple[int, int]) -> CardInput:
    """``raw`` is the request's ``card`` hash; ``today`` is (year, month)."""
    if not isinstance(raw, dict):
        raise InvalidRequest("Missing required param: card.", param="card",
                             code="parameter_missing")
    unknown = sorted(set(raw) - {"number", "exp_month", "exp_year", "cvc"})
    if unknown:
        raise InvalidRequest(f"Received unknown parameter: card[{unknown[0]}]",
                             param=f"card[{unknown[0]}]", code="parameter_unknown")
    for field in ("number", "exp_month", "exp_year"):
        if raw.get(field) in (None, ""):
            raise InvalidRequest(f"Missing required param: card[{field}].",
                                 param=f"card[{field}]", code="parameter_missing")
    number = raw["number"]
    digits = number.replace(" ", "").replace("-", "") if isinstance(number, str) else ""
    if not luhn_valid(digits):
        raise CardInvalid("Your card number is incorrect.", code="incorrect_number",
                          param="card[number]")
    month = _integer(raw["exp_month"], code="invalid_expiry_month", param="card[exp_month]",
                     message="Your card's expiration month is invalid.")
    if not 1 <= month <= 12:
        raise CardInvalid("Your card's expiration month is invalid.",
                          code="invalid_expiry_month", param="card[exp_month]")
    year = _integer(raw["exp_year"], code="invalid_expiry_year", param="card[exp_year]",
                    message="Your card's expiration year is invalid.")
    if year < 100:
        year += 2000  # Stripe takes two-digit years too
    this_year, this_month = today
    if year < this_year:
        raise CardInvalid("Your card's expiration year is in the past.",
                          code="invalid_expiry_year", param="card[exp_year]")
    if year > this_year + 50:
        raise CardInvalid("Your card's expiration year is invalid.",
                          code="invalid_expiry_year", param="card[exp_year]")
    if (year, month) < (this_year, this_month):
        raise CardInvalid("Your card's expiration date is in the past.",
                          code="invalid_expiry_month", param="card[exp_month]")
    brand = brand_of(digits)
    cvc = raw.get("cvc")
    secret_cvc = None
    if cvc not in (None, ""):
        wanted = (4,) if brand == "amex" else (3,)
        if not (isinstance(cvc, str) and cvc.isascii() and cvc.isdigit()
                and len(cvc) in wanted):
            raise CardInvalid("Your card's security code is invalid.", code="invalid_cvc",
                              param="card[cvc]")
        secret_cvc = Secret(cvc)
    return CardInput(number=CardNumber(digits), exp_month=month, exp_year=year, brand=brand,
                     cvc=secret_cvc)
