"""FeeSchedule: percentage (rounded half up) plus a fixed part scaled by the exponent."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kassa.domain.fees import FeeSchedule
from kassa.domain.money import EXPONENTS, MAX_AMOUNT, Money

DEFAULT = FeeSchedule()  # 2.90 % + 0.30


def _half_up(x: Fraction) -> int:
    return int(x + Fraction(1, 2)) if x >= 0 else -int(-x + Fraction(1, 2))


@pytest.mark.parametrize(("gross", "fee"), [
    (Money(1000, "usd"), 29 + 30),  # 29.0
    (Money(10000, "usd"), 290 + 30),
    (Money(500, "usd"), 15 + 30),  # 14.5 rounds half up to 15
    (Money(499, "usd"), 14 + 30),  # 14.471
    (Money(2000, "eur"), 58 + 30),
    (Money(50, "usd"), 1 + 30),  # 1.45 -> 1
    (Money(52, "usd"), 2 + 30),  # 1.508 -> 2
])
def test_two_decimal_currency(gross, fee):
    assert DEFAULT.fee_for(gross) == Money(fee, gross.currency)


@pytest.mark.parametrize(("gross", "fee"), [
    (Money(1000, "jpy"), 29),  # 0.30 JPY of fixed fee is 0 yen
    (Money(500, "jpy"), 15),
    (Money(17, "jpy"), 0),  # 0.493 -> 0
    (Money(18, "jpy"), 1),  # 0.522 -> 1
    (Money(1, "jpy"), 0),
    (Money(99_999_999, "jpy"), 2_900_000),  # 2,899,999.971 -> 2,900,000
])
def test_zero_decimal_currency_has_no_fractional_fixed_fee(gross, fee):
    assert DEFAULT.fee_for(gross) == Money(fee, "jpy")


@pytest.mark.parametrize(("gross", "fee"), [
    (Money(1000, "kwd"), 29 + 300),  # fixed 0.300 KWD = 300 fils
    (Money(100_000, "kwd"), 2900 + 300),
])
def test_three_decimal_currency_scales_the_fixed_part(gross, fee):
    assert DEFAULT.fee_for(gross) == Money(fee, "kwd")


@pytest.mark.parametrize(("gross", "expected"), [
    (Money(1, "usd"), 1), (Money(30, "usd"), 30), (Money(31, "usd"), 31),
    (Money(299, "kwd"), 299), (Money(309, "kwd"), 309),
])
def test_fee_never_exceeds_the_amount(gross, expected):
    assert DEFAULT.fee_for(gross) == Money(expected, gross.currency)


def test_custom_schedules():
    assert FeeSchedule(0, 0).fee_for(Money(12345, "usd")) == Money(0, "usd")
    assert FeeSchedule(10_000, 0).fee_for(Money(12345, "usd")) == Money(12345, "usd")
    assert FeeSchedule(150, 25).fee_for(Money(10_000, "usd")) == Money(150 + 25, "usd")
    assert FeeSchedule(150, 25).fee_for(Money(10_000, "kwd")) == Money(150 + 250, "kwd")


@given(minor=st.integers(1, MAX_AMOUNT), currency=st.sampled_from(sorted(EXPONENTS)),
       bps=st.integers(0, 10_000), fixed=st.integers(0, 500))
def test_fee_matches_exact_rational_arithmetic(minor, currency, bps, fixed):
    fee = FeeSchedule(bps, fixed).fee_for(Money(minor, currency))
    assert fee.currency == currency
    assert isinstance(fee.minor, int)
    exp = EXPONENTS[currency]
    expected = _half_up(Fraction(minor * bps, 10_000)) + (fixed * 10**exp) // 100
    assert fee.minor == min(minor, expected)
    assert 0 <= fee.minor <= minor


@given(a=st.integers(1, MAX_AMOUNT), b=st.integers(1, MAX_AMOUNT),
       currency=st.sampled_from(["usd", "jpy", "kwd"]))
def test_fee_is_monotone_in_the_amount(a, b, currency):
    lo, hi = sorted((a, b))
    assert DEFAULT.fee_for(Money(lo, currency)) <= DEFAULT.fee_for(Money(hi, currency))
