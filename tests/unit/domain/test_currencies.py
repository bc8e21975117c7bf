"""The currency table: API minor units agree with ISO 4217 except where Stripe documents
otherwise; major-unit decimals convert exactly both ways; payout and charge multiples."""

from __future__ import annotations

from decimal import Decimal

import iso4217
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kassa.domain.currencies import (
    CURRENCIES,
    WITHDRAWN,
    check_charge_amount,
    check_payout_amount,
    currency,
    from_major,
    payable,
    to_major,
)
from kassa.domain.errors import AmountError, InvalidRequest
from kassa.domain.money import EXPONENTS, MAX_AMOUNT, Money


def test_every_accepted_currency_has_a_row():
    assert set(CURRENCIES) == set(EXPONENTS)
    assert currency("JPY").exponent == 0 and currency("krw").zero_decimal
    for code in ("kwd", "bhd", "jod", "omr", "tnd"):
        assert currency(code).exponent == 3 == currency(code).iso_exponent
    assert currency("usd").exponent == 2


def test_iso_exponents_are_iso_4217s():
    for code, row in CURRENCIES.items():
        if code in WITHDRAWN:
            with pytest.raises(ValueError):
                iso4217.Currency(code.upper())
            continue
        assert iso4217.Currency(code.upper()).exponent == row.iso_exponent, code
    # where Stripe's API keeps its own convention
    assert (currency("isk").exponent, currency("isk").iso_exponent) == (2, 0)
    assert (currency("mga").exponent, currency("mga").iso_exponent) == (0, 2)


@pytest.mark.parametrize(("money", "major"), [
    (Money(1234, "usd"), "12.34"), (Money(1234, "jpy"), "1234"),
    (Money(1234, "kwd"), "1.234"), (Money(-5, "eur"), "-0.05"), (Money(0, "bhd"), "0.000"),
])
def test_major_units(money, major):
    assert to_major(money) == Decimal(major)
    assert from_major(major, money.currency.upper()) == money


@pytest.mark.parametrize(("value", "ccy"), [
    ("12.345", "usd"), ("1.5", "jpy"), ("0.0001", "kwd"), ("abc", "usd"), ("NaN", "usd"),
    ("Infinity", "eur"), ("1", "xyz"),
])
def test_from_major_refuses_what_it_cannot_read_exactly(value, ccy):
    with pytest.raises(InvalidRequest):
        from_major(value, ccy)


@given(st.integers(-MAX_AMOUNT * 1000, MAX_AMOUNT * 1000), st.sampled_from(sorted(EXPONENTS)))
def test_major_units_round_trip(minor, code):
    money = Money(minor, code)
    assert from_major(str(to_major(money)), code) == money


def test_multiples():
    check_charge_amount(Money(500, "isk"))
    with pytest.raises(AmountError):
        check_charge_amount(Money(550, "isk"))
    with pytest.raises(AmountError):
        check_charge_amount(Money(5124, "kwd"))
    check_charge_amount(Money(5120, "kwd"))
    check_charge_amount(Money(1045, "huf"))  # charged with decimals ...
    with pytest.raises(AmountError):
        check_payout_amount(Money(1045, "huf"))  # ... paid out in whole forints
    check_payout_amount(Money(1000, "twd"))
    assert payable(Money(1045, "huf")) == Money(1000, "huf")
    assert payable(Money(5124, "kwd")) == Money(5120, "kwd")
    assert payable(Money(-300, "usd")) == Money(0, "usd")
    assert payable(Money(77, "jpy")) == Money(77, "jpy")


@given(st.integers(-MAX_AMOUNT, MAX_AMOUNT), st.sampled_from(sorted(EXPONENTS)))
def test_payable_is_the_largest_valid_payout_not_above_the_balance(minor, code):
    paid = payable(Money(minor, code))
    assert 0 <= paid.minor <= max(minor, 0)
    check_payout_amount(paid)
    assert max(minor, 0) - paid.minor < CURRENCIES[code].payout_multiple
