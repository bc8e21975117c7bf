"""Payout destinations: IBANs and US routing numbers are checked as the standards say (the
hand-written checks agree with schwifty and python-stdnum), and only last4 is ever shown."""

from __future__ import annotations

import pytest
import rstr
import schwifty
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.us import rtn

from kassa.domain.bank_accounts import (
    IBAN_LENGTHS,
    aba_checksum_ok,
    bank_account,
    iban_checksum_ok,
    normalize_iban,
)
from kassa.domain.errors import InvalidRequest


def schwifty_accepts(iban: str) -> bool:
    try:
        schwifty.IBAN(iban, validate_bban=False)
    except ValueError:
        return False
    return True


def with_check_digits(country: str, bban: str) -> str:
    digits = 98 - int("".join(str(int(c, 36)) for c in bban + country + "00")) % 97
    return f"{country}{digits:02d}{bban}"


DE = "DE89370400440532013000"
GB = "GB82WEST12345698765432"


def test_iban_account_normalised_and_masked():
    acct = bank_account(account_holder_name="  Jenny   Rosen ", country="de", currency="EUR",
                        iban="de89 3704 0044 0532 0130 00")
    assert (acct.iban, acct.country, acct.currency, acct.account_holder_name) == (
        DE, "DE", "eur", "Jenny Rosen")
    assert acct.masked() == {"account_holder_name": "Jenny Rosen", "country": "DE",
                             "currency": "eur", "last4": "3000", "routing_number": None,
                             "scheme": "iban"}
    assert DE not in repr(acct) and "3000" in repr(acct)


def test_us_account_masked():
    acct = bank_account(account_holder_name="Jenny Rosen", country="US", currency="usd",
                        routing_number="110000000", account_number="000123456789")
    assert acct.masked()["last4"] == "6789" and acct.masked()["routing_number"] == "110000000"
    assert "000123456789" not in repr(acct) and "000123456789" not in str(acct.masked())
    assert acct.number == "000123456789"  # for the bank call only


@pytest.mark.parametrize(("kwargs", "param"), [
    ({"iban": "DE89370400440532013001"}, "iban"),  # check digits
    ({"iban": "DE8937040044053201300"}, "iban"),  # length
    ({"iban": "QQ89370400440532013000"}, "iban"),  # no such country
    ({"iban": "DE89 3704 0044 0532 0130 0!"}, "iban"),
    ({"iban": GB}, "country"),  # a British IBAN for a German account
    ({"iban": DE, "account_number": "1234"}, "iban"),
    ({"iban": None}, "routing_number"),
    ({"account_holder_name": " "}, "account_holder_name"),
    ({"account_holder_name": "x" * 141}, "account_holder_name"),
    ({"country": "Germany"}, "country"),
    ({"currency": "xyz"}, "currency"),
])
def test_bad_iban_destinations_are_refused(kwargs, param):
    args = {"account_holder_name": "Jenny Rosen", "country": "DE", "currency": "eur",
            "iban": DE, **kwargs}
    with pytest.raises(InvalidRequest) as info:
        bank_account(**args)
    assert info.value.param == param


@pytest.mark.parametrize(("kwargs", "param"), [
    ({"routing_number": "110000001"}, "routing_number"),  # checksum
    ({"routing_number": "11000000"}, "routing_number"),
    ({"routing_number": "000000000"}, "routing_number"),
    ({"account_number": "123"}, "account_number"),
    ({"account_number": "1" * 18}, "account_number"),
    ({"account_number": "12a45"}, "account_number"),
    ({"country": "CA"}, "country"),
    ({"currency": "eur"}, "currency"),
])
def test_bad_us_destinations_are_refused(kwargs, param):
    args = {"account_holder_name": "Jenny Rosen", "country": "US", "currency": "usd",
            "routing_number": "110000000", "account_number": "000123456789", **kwargs}
    with pytest.raises(InvalidRequest) as info:
        bank_account(**args)
    assert info.value.param == param


def test_check_digit_aliases_are_refused():
    """00, 01 and 99 are aliases of 97, 98 and 02 under mod 97: the bare test passes them."""
    aliases = {"97": "00", "98": "01", "02": "99"}
    found = {}
    for n in range(10_000):
        iban = with_check_digits("DE", f"37040044{n:010d}")
        if iban[2:4] in aliases:
            found.setdefault(iban[2:4], iban)
    assert set(found) == set(aliases)
    for real, iban in found.items():
        alias = iban[:2] + aliases[real] + iban[4:]
        assert int("".join(str(int(c, 36)) for c in alias[4:] + alias[:4])) % 97 == 1
        assert iban_checksum_ok(iban) and schwifty_accepts(iban)
        assert not iban_checksum_ok(alias) and not schwifty_accepts(alias)


def test_lengths_are_the_registrys():
    for country, length in IBAN_LENGTHS.items():
        assert schwifty.registry.get_iban_spec(country).iban_length == length, country


@settings(max_examples=300)
@given(st.sampled_from(sorted(IBAN_LENGTHS)), st.randoms(use_true_random=False))
def test_iban_check_agrees_with_schwifty(country, rnd):
    spec = schwifty.registry.get_iban_spec(country)
    bban = rstr.Rstr(rnd).xeger(spec.regex.pattern).upper()  # a BBAN of the country's format
    iban = with_check_digits(country, bban)
    assert normalize_iban(iban) == iban and schwifty_accepts(iban)
    # any one changed digit: mod 97 catches every single-digit error, as schwifty does
    digits = [i for i in range(2, len(iban)) if iban[i].isdigit()]
    i = rnd.choice(digits)
    changed = iban[:i] + str((int(iban[i]) + rnd.randrange(1, 10)) % 10) + iban[i + 1:]
    assert not iban_checksum_ok(changed) and not schwifty_accepts(changed)
    with pytest.raises(InvalidRequest):
        normalize_iban(changed)
    with pytest.raises(InvalidRequest):
        normalize_iban(iban[:-1])  # a wrong length, whatever its check digits


@given(st.text("0123456789", min_size=9, max_size=9))
def test_aba_checksum_agrees_with_stdnum(routing):
    assert aba_checksum_ok(routing) == rtn.is_valid(routing)


# Japan: Stripe's JP external account fields (routing_number = bank code + branch code,
# 7-digit account_number, account_type futsu or toza, jpy); Stripe's test account numbers
JP = {"account_holder_name": "ヤマダ タロウ", "country": "JP", "currency": "jpy",
      "routing_number": "1100000", "account_number": "0001234", "account_type": "futsu"}


def test_japanese_account_masked_with_its_bank_and_branch():
    acct = bank_account(**{**JP, "routing_number": "0001-100", "account_type": "TOZA",
                           "account_number": "0 001 234"})
    assert (acct.routing_number, acct.account_number, acct.account_type, acct.scheme) == (
        "0001100", "0001234", "toza", "zengin")
    assert (acct.bank_code, acct.branch_code) == ("0001", "100")
    assert acct.masked() == {"account_holder_name": "ﾔﾏﾀﾞ ﾀﾛｳ", "country": "JP",
                             "currency": "jpy", "last4": "1234", "routing_number": "0001100",
                             "scheme": "zengin", "account_type": "toza", "bank_code": "0001",
                             "branch_code": "100"}
    assert "0001234" not in repr(acct) and "0001234" not in str(acct.masked())
    assert acct.number == "0001234"  # for the bank call only


@pytest.mark.parametrize(("holder", "stored"), [
    ("ヤマダ タロウ", "ﾔﾏﾀﾞ ﾀﾛｳ"), ("ﾔﾏﾀﾞ ﾀﾛｳ", "ﾔﾏﾀﾞ ﾀﾛｳ"),
    ("カ）ヤマダシヨウジ", "ｶ)ﾔﾏﾀﾞｼﾖｳｼﾞ"), ("ｶ)ﾔﾏﾀﾞｼﾖｳｼﾞ", "ｶ)ﾔﾏﾀﾞｼﾖｳｼﾞ"),
    ("YAMADA TARO", "YAMADA TARO"), ("ＹＡＭＡＤＡ ３", "YAMADA 3"),
    ("ﾊﾟﾌﾞﾘﾂｸ", "ﾊﾟﾌﾞﾘﾂｸ"), ("ヴイ-1.2/(A)", "ｳﾞｲ-1.2/(A)"),
    ("カ\u3099", "ｶﾞ"),  # a kana and a combining voiced mark
])
def test_a_zengin_holder_name_is_stored_in_its_half_width_form(holder, stored):
    # what is stored is what the transfer carries (and what the API shows)
    acct = bank_account(**{**JP, "account_holder_name": holder})
    assert acct.account_holder_name == stored
    assert acct.masked()["account_holder_name"] == stored


def test_a_zengin_holder_name_is_at_most_30_half_width_characters():
    assert bank_account(**{**JP, "account_holder_name": "A" * 30}).account_holder_name \
        == "A" * 30
    # 15 voiced kana are 30 half-width characters (each kana and its mark); 16 are 32
    assert len(bank_account(**{**JP, "account_holder_name": "ガ" * 15}
                            ).account_holder_name) == 30
    for holder, length in (("A" * 31, 31), ("ガ" * 16, 32), ("ﾊﾟ" * 15 + "A", 31)):
        with pytest.raises(InvalidRequest) as exc:
            bank_account(**{**JP, "account_holder_name": holder})
        assert exc.value.param == "account_holder_name"
        assert "at most 30 half-width characters" in exc.value.message
        assert f"this one is {length}" in exc.value.message


@pytest.mark.parametrize(("holder", "why"), [
    ("山田 太郎", "'山' is not in it"),  # kanji
    ("ヤマダ・タロウ", "'・' is not in it"),  # the middle dot
    ("キュウヨ イチロウ", "small kana are written large (ュ as ユ)"),
    ("ｷｭｳﾖ ｲﾁﾛｳ", "small kana are written large (ュ as ユ)"),  # half-width small kana
    ("ヤマダー", "'ー' is not in it"),  # the long-vowel mark
    ("Yamada Taro", "Latin letters are upper case"),
    ("やまだ たろう", "'や' is not in it"),  # hiragana
    ("YAMADA, TARO", "',' is not in it"),
    ("YAMADA & CO", "'&' is not in it"),
    # compatibility characters NFKC would have turned into Zengin ones
    ("ヤマダ Ⅳ", "'Ⅳ' is not in it"),
    ("ヤマダ ①", "'①' is not in it"),
    ("YAMADA™", "'™' is not in it"),
    ("ﾔﾏﾀ゛", "'゛' is not in it"),  # the spacing voiced mark
])
def test_a_japanese_holder_name_outside_the_zengin_set_is_refused(holder, why):
    with pytest.raises(InvalidRequest) as exc:
        bank_account(**{**JP, "account_holder_name": holder})
    assert exc.value.param == "account_holder_name"
    assert "Zengin character set" in exc.value.message and why in exc.value.message


def test_the_zengin_rule_is_for_japanese_accounts_only():
    us = bank_account(account_holder_name="Jane Doe & Co., Ltd.", country="US",
                      currency="usd", routing_number="110000000", account_number="000123456789")
    assert us.account_holder_name == "Jane Doe & Co., Ltd."


def test_full_width_spaces_in_a_holder_name_are_one_space():
    assert bank_account(**{**JP, "account_holder_name": "ヤマダ\u3000\u3000タロウ"}
                        ).account_holder_name == "ﾔﾏﾀﾞ ﾀﾛｳ"


@pytest.mark.parametrize(("kwargs", "param"), [
    ({"routing_number": "110000"}, "routing_number"),  # a bank code without its branch
    ({"routing_number": "11000000"}, "routing_number"),
    ({"routing_number": "110000a"}, "routing_number"),
    ({"account_number": "123456"}, "account_number"),
    ({"account_number": "12345678"}, "account_number"),
    ({"account_number": "12345a7"}, "account_number"),
    ({"account_type": None}, "account_type"),
    ({"account_type": "checking"}, "account_type"),
    ({"account_type": "savings"}, "account_type"),
    ({"currency": "usd"}, "currency"),
    ({"routing_number": None}, "routing_number"),
])
def test_bad_japanese_destinations_are_refused(kwargs, param):
    with pytest.raises(InvalidRequest) as info:
        bank_account(**{**JP, **kwargs})
    assert info.value.param == param


@pytest.mark.parametrize("kwargs", [
    {"country": "US", "currency": "usd", "routing_number": "110000000",
     "account_number": "000123456789", "account_type": "futsu"},
    {"country": "DE", "currency": "eur", "iban": DE, "account_type": "toza"},
])
def test_account_type_is_for_japanese_accounts_only(kwargs):
    with pytest.raises(InvalidRequest) as info:
        bank_account(account_holder_name="Jenny Rosen", **kwargs)
    assert info.value.param == "account_type"


def test_us_and_iban_accounts_show_no_japanese_fields():
    us = bank_account(account_holder_name="Jenny Rosen", country="US", currency="usd",
                      routing_number="110000000", account_number="000123456789")
    assert us.scheme == "us_routing" and us.bank_code is None and us.account_type is None
    assert "account_type" not in us.masked()
