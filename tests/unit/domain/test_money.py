"""Money: integer minor units of one ISO 4217 currency, with the currency's exponent."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kassa.domain.money import (
    EXPONENTS,
    MAX_AMOUNT,
    Money,
    UnknownCurrency,
    exponent,
    normalize_currency,
)

CURRENCIES = sorted(EXPONENTS)


def test_add_sub_neg_keep_the_currency():
    a, b = Money(1050, "usd"), Money(250, "usd")
    assert a + b == Money(1300, "usd")
    assert a - b == Money(800, "usd")
    assert b - a == Money(-800, "usd")
    assert -a == Money(-1050, "usd")
    assert Money.zero("jpy") == Money(0, "jpy")


def test_comparisons_within_one_currency():
    small, big = Money(1, "kwd"), Money(2, "kwd")
    assert small < big and small <= big and small <= Money(1, "kwd")
    assert big > small and big >= small  # reflected __lt__/__le__
    assert not big < small


def test_equality_and_hash_include_the_currency():
    assert Money(100, "usd") != Money(100, "jpy")
    assert len({Money(100, "usd"), Money(100, "usd"), Money(100, "eur")}) == 2


@pytest.mark.parametrize("op", [
    lambda a, b: a + b,
    lambda a, b: a - b,
    lambda a, b: a < b,
    lambda a, b: a <= b,
    lambda a, b: a > b,
    lambda a, b: a >= b,
])
def test_mixing_currencies_is_refused(op):
    with pytest.raises(ValueError, match="currency mismatch"):
        op(Money(100, "usd"), Money(100, "eur"))


@pytest.mark.parametrize("code", ["xxx", "usdd", "", "US", "btc"])
def test_unknown_currency_is_refused(code):
    with pytest.raises(UnknownCurrency):
        Money(1, code)
    with pytest.raises(UnknownCurrency):
        normalize_currency(code)


def test_money_takes_the_normalised_lower_case_code():
    with pytest.raises(UnknownCurrency):
        Money(1, "USD")
    assert normalize_currency(" USD ") == "usd"
    assert Money(1, normalize_currency("Usd")).currency == "usd"


def test_unknown_currency_is_a_value_error():
    assert issubclass(UnknownCurrency, ValueError)


@pytest.mark.parametrize("minor", [1.5, 1.0, "100", None, True, False])
def test_minor_must_be_an_int_never_a_float_or_bool(minor):
    with pytest.raises(TypeError):
        Money(minor, "usd")


@pytest.mark.parametrize(("code", "exp"), [
    ("jpy", 0), ("krw", 0), ("clp", 0), ("vnd", 0),
    ("usd", 2), ("eur", 2), ("gbp", 2),
    ("kwd", 3), ("bhd", 3), ("jod", 3), ("omr", 3), ("tnd", 3),
])
def test_exponents(code, exp):
    assert exponent(code) == exp
    assert exponent(code.upper()) == exp
    assert EXPONENTS[code] == exp


def test_exponent_of_unknown_currency():
    with pytest.raises(UnknownCurrency):
        exponent("zzz")


@pytest.mark.parametrize(("money", "text"), [
    (Money(0, "usd"), "0.00 USD"),
    (Money(5, "usd"), "0.05 USD"),
    (Money(123456, "usd"), "1234.56 USD"),
    (Money(-5, "usd"), "-0.05 USD"),
    (Money(-123456, "usd"), "-1234.56 USD"),
    (Money(0, "jpy"), "0 JPY"),
    (Money(1234, "jpy"), "1234 JPY"),
    (Money(-1234, "jpy"), "-1234 JPY"),
    (Money(1, "kwd"), "0.001 KWD"),
    (Money(1234, "kwd"), "1.234 KWD"),
    (Money(-1005, "kwd"), "-1.005 KWD"),
])
def test_str(money, text):
    assert str(money) == text


@given(a=st.integers(-10**12, 10**12), b=st.integers(-10**12, 10**12),
       currency=st.sampled_from(CURRENCIES))
def test_arithmetic_is_exact_integer_arithmetic(a, b, currency):
    x, y = Money(a, currency), Money(b, currency)
    assert (x + y).minor == a + b
    assert (x - y) + y == x
    assert (-x).minor == -a and -(-x) == x  # noqa: B002 - a double negation, not --
    assert (x < y) == (a < b)
    assert (x <= y) == (a <= b)


@given(minor=st.integers(-10**12, 10**12), currency=st.sampled_from(CURRENCIES))
def test_str_round_trips_to_the_minor_amount(minor, currency):
    number, code = str(Money(minor, currency)).split(" ")
    assert code == currency.upper()
    exp = EXPONENTS[currency]
    whole, _, frac = number.lstrip("-").partition(".")
    assert len(frac) == exp
    value = int(whole) * 10**exp + (int(frac) if frac else 0)
    assert (-value if number.startswith("-") else value) == minor


def test_max_amount_fits_postgres_bigint_sums():
    assert MAX_AMOUNT == 99_999_999
    assert MAX_AMOUNT * 10**9 < 2**63
