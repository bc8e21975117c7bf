"""The currency table: per currency kassa accepts, the minor unit its amounts are counted in
(``Money.minor``, Stripe's API convention, :data:`kassa.domain.money.EXPONENTS`), the ISO 4217
exponent where that differs, and the multiples charges and payouts must be made in; plus
exact conversion between minor units and the major-unit decimals of settlement reports.

Stripe counts amounts in ISO 4217 minor units except where it kept an older convention:
ISK stays two-decimal in the API though ISO 4217 makes it zero-decimal (so ISK amounts
must be multiples of 100), MGA is zero-decimal in the API and two-decimal in ISO. HUF and
TWD are two-decimal but paid out in whole units; three-decimal currencies (BHD, JOD, KWD,
OMR, TND) are charged and paid in multiples of 10 (https://docs.stripe.com/currencies).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext

from kassa.domain.errors import AmountError, InvalidRequest
from kassa.domain.money import EXPONENTS, Money, UnknownCurrency, normalize_currency

# ISO 4217 exponents that differ from the API's (see the module docstring).
_ISO_EXPONENT_DIFFERS = {"isk": 0, "mga": 2}
# Codes withdrawn from ISO 4217 that kassa still accepts for old payments: ANG (replaced
# by XCG in 2025), BGN (Bulgaria joined the euro in 2026), STD (replaced by STN in 2018).
WITHDRAWN = frozenset({"ang", "bgn", "std"})

_CHARGE_MULTIPLE = {"isk": 100}
_PAYOUT_MULTIPLE = {"isk": 100, "huf": 100, "twd": 100}
_THREE_DECIMAL_MULTIPLE = 10


@dataclass(frozen=True, slots=True)
class Currency:
    code: str  # lower case, as the API writes it
    exponent: int  # Money.minor counts 10**-exponent of the major unit
    iso_exponent: int  # ISO 4217's minor unit
    charge_multiple: int  # a charge's minor amount is a multiple of this
    payout_multiple: int  # a payout's minor amount is a multiple of this

    @property
    def zero_decimal(self) -> bool:
        return self.exponent == 0


def _build(code: str, exponent: int) -> Currency:
    three = _THREE_DECIMAL_MULTIPLE if exponent == 3 else 1
    return Currency(code, exponent, _ISO_EXPONENT_DIFFERS.get(code, exponent),
                    _CHARGE_MULTIPLE.get(code, three), _PAYOUT_MULTIPLE.get(code, three))


CURRENCIES: dict[str, Currency] = {code: _build(code, e) for code, e in sorted(EXPONENTS.items())}


def currency(code: str) -> Currency:
    """The table's row for ``code`` (any case); raises UnknownCurrency."""
    return CURRENCIES[normalize_currency(code)]


def to_major(amount: Money) -> Decimal:
    """The exact major-unit decimal of ``amount`` (1234 usd -> 12.34, 1234 jpy -> 1234)."""
    exp = CURRENCIES[amount.currency].exponent
    return Decimal(amount.minor).scaleb(-exp)


def from_major(value: str | Decimal, code: str) -> Money:
    """Money from a major-unit decimal as settlement reports write it (``"12.34"``, ``"-5"``).

    Exact: a value with more decimals than the currency has is refused, never rounded,
    so a report row can never be silently misread by a fraction of a unit."""
    try:
        ccy = currency(code)
    except UnknownCurrency:
        raise InvalidRequest(f"Invalid currency: {code}.", param="currency") from None
    try:
        number = value if isinstance(value, Decimal) else Decimal(value.strip())
    except (InvalidOperation, AttributeError):
        raise InvalidRequest(f"Not a decimal amount: {value!r}.", param="amount") from None
    if not number.is_finite():
        raise InvalidRequest(f"Not a finite amount: {value!r}.", param="amount")
    with localcontext() as exact:
        exact.prec = 80  # far beyond any bigint amount: scaleb must not round
        minor = number.scaleb(ccy.exponent)
    if minor != minor.to_integral_value():
        raise InvalidRequest(f"{value} has more decimals than {ccy.code} allows "
                             f"({ccy.exponent}).", param="amount")
    return Money(int(minor), ccy.code)


def check_charge_amount(amount: Money) -> None:
    multiple = CURRENCIES[amount.currency].charge_multiple
    if amount.minor % multiple:
        raise AmountError(f"Amounts in {amount.currency} must be multiples of {multiple} "
                          "(in the currency's smallest unit).", param="amount")


def check_payout_amount(amount: Money) -> None:
    multiple = CURRENCIES[amount.currency].payout_multiple
    if amount.minor % multiple:
        raise AmountError(f"Payouts in {amount.currency} must be multiples of {multiple} "
                          "(in the currency's smallest unit).", param="amount")


def payable(available: Money) -> Money:
    """The largest payout ``available`` allows: rounded down to the payout multiple, zero
    when the balance is not positive (a negative balance is carried, never paid out)."""
    multiple = CURRENCIES[available.currency].payout_multiple
    if available.minor <= 0:
        return Money.zero(available.currency)
    return Money(available.minor - available.minor % multiple, available.currency)
