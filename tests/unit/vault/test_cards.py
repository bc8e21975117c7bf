"""Card validation at the vault: Luhn, expiry and CVC with Stripe's error codes, and error
messages that never repeat what was sent."""

from __future__ import annotations

import pytest

from kassa.domain.errors import InvalidRequest
from kassa.vault.cards import CardInvalid, brand_of, luhn_valid, validate_card

TODAY = (2026, 12)


def card(number="4242424242424242", month="12", year="2030", cvc="123"):
    return {"number": number, "exp_month": month, "exp_year": year, "cvc": cvc}


@pytest.mark.parametrize(("number", "brand"), [
    ("4242424242424242", "visa"), ("5555555555554444", "mastercard"),
    ("2223003122003222", "mastercard"), ("378282246310005", "amex"),
    ("6011111111111117", "discover"), ("3566002020360505", "jcb"),
    ("36227206271667", "diners"), ("6200000000000005", "unionpay")])
def test_test_cards_pass_with_their_brand(number, brand):
    cvc = "1234" if brand == "amex" else "123"
    got = validate_card(card(number, cvc=cvc), today=TODAY)
    assert got.brand == brand_of(number) == brand
    assert got.number.last4 == number[-4:]


def test_spaces_in_the_number_are_ignored():
    assert validate_card(card("4242 4242 4242 4242"), today=TODAY).number.reveal() == \
        "4242424242424242"


@pytest.mark.parametrize("number", ["4242424242424241", "1234", "42424242424242424242",
                                    "4242x24242424242", "٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢", 4242424242424242])
def test_a_wrong_number_is_incorrect_number(number):
    with pytest.raises(CardInvalid) as err:
        validate_card(card(number), today=TODAY)
    assert err.value.code == "incorrect_number" and err.value.param == "card[number]"
    assert str(number) not in err.value.message


@pytest.mark.parametrize(("month", "year", "code"), [
    ("13", "2030", "invalid_expiry_month"), ("0", "2030", "invalid_expiry_month"),
    ("ab", "2030", "invalid_expiry_month"), ("11", "2026", "invalid_expiry_month"),
    ("12", "2025", "invalid_expiry_year"), ("12", "2099", "invalid_expiry_year"),
    ("12", "abcd", "invalid_expiry_year")])
def test_a_bad_or_past_expiry_is_refused(month, year, code):
    with pytest.raises(CardInvalid) as err:
        validate_card(card(month=month, year=year), today=TODAY)
    assert err.value.code == code


def test_this_month_and_two_digit_years_are_valid():
    assert validate_card(card(month="12", year="2026"), today=TODAY).exp_year == 2026
    assert validate_card(card(year="30"), today=TODAY).exp_year == 2030


@pytest.mark.parametrize(("number", "cvc"), [("4242424242424242", "12"),
                                             ("4242424242424242", "1234"),
                                             ("378282246310005", "123"),
                                             ("4242424242424242", "12a")])
def test_a_bad_cvc_is_invalid_cvc(number, cvc):
    with pytest.raises(CardInvalid) as err:
        validate_card(card(number, cvc=cvc), today=TODAY)
    assert err.value.code == "invalid_cvc" and cvc not in err.value.message


def test_the_cvc_is_optional_and_kept_secret():
    assert validate_card(card(cvc=""), today=TODAY).cvc is None
    got = validate_card(card(cvc="737"), today=TODAY)
    assert got.cvc is not None and "737" not in repr(got)
    assert "4242424242424242" not in repr(got)


@pytest.mark.parametrize("raw", [None, {"number": "4242424242424242"},
                                 {**card(), "track2": "x"}])
def test_missing_or_unknown_fields_are_invalid_requests(raw):
    with pytest.raises(InvalidRequest):
        validate_card(raw, today=TODAY)


def test_luhn():
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert not luhn_valid("79927398713")  # Luhn-valid, but too short for a card
