"""Payout destinations: a merchant's bank account (holder, IBAN, US routing + account
number, or a Japanese Zengin account, country, currency), validated, and shown only masked
(last 4 digits).

Japan (Stripe's JP external account fields): ``routing_number`` is the Zengin bank code
(4 digits) followed by the branch code (3 digits), ``account_number`` the 7-digit account
number, ``account_type`` ``futsu`` (ordinary) or ``toza`` (current), currency jpy. The
holder's name (usually katakana) must be writable in the Zengin character set the bank
transfer carries (:data:`ZENGIN_NAME_CHARS`): half-width katakana, upper-case Latin
letters, digits, space and ``( ) - . /``. Full-width forms of those characters are
accepted (they map one to one onto the half-width ones, as Stripe accepts full-width
katakana), and only those: no other compatibility form (``Ⅳ``, ``①``, ``™``) passes. The
name is stored, shown and sent in its half-width form, what the transfer carries, and is
at most 30 half-width characters (a voiced or semi-voiced mark is one of them: ``ｶﾞ`` is
two). Small kana, the long-vowel mark, the middle dot, lower-case letters and kanji are
refused (a bank would return the transfer).

The checks are hand-written because the domain is stdlib only (ARCHITECTURE §10): the
ISO 13616 mod-97 check and the ABA routing checksum are a few lines each, and the lengths
below are the SWIFT IBAN registry's. tests/unit/domain/test_bank_accounts.py checks them
against schwifty and python-stdnum.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from kassa.domain.errors import InvalidRequest
from kassa.domain.money import UnknownCurrency, normalize_currency

# IBAN length per country, from the SWIFT IBAN registry (countries of the official list).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AX": 18, "AZ": 28, "BA": 20, "BE": 16,
    "BG": 22, "BH": 22, "BI": 27, "BL": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22,
    "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GF": 27,
    "GG": 22, "GI": 23, "GL": 18, "GP": 27, "GR": 27, "GT": 28, "HN": 28, "HR": 21,
    "HU": 28, "IE": 22, "IL": 23, "IM": 22, "IQ": 23, "IS": 26, "IT": 27, "JE": 22,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MF": 27, "MK": 19, "MN": 20,
    "MQ": 27, "MR": 27, "MT": 31, "MU": 30, "NC": 27, "NI": 28, "NL": 18, "NO": 15,
    "OM": 23, "PF": 27, "PK": 24, "PL": 28, "PM": 27, "PS": 29, "PT": 25, "QA": 29,
    "RE": 27, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24,
    "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TF": 27, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "WF": 27, "XK": 20, "YE": 30,
    "YT": 27,
}

MAX_HOLDER_NAME = 140
_COUNTRY = re.compile(r"[A-Z]{2}")
_IBAN_CHARS = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]+")
_DIGITS = re.compile(r"[0-9]+")
_SEPARATORS = re.compile(r"[\s-]")
JP_ACCOUNT_TYPES = ("futsu", "toza")
# the Zengin (全銀協) set for a payee's name, read after NFKC (which turns half-width kana,
# dakuten included, and full-width Latin/digits into one form): the large katakana, the
# voiced and semi-voiced ones, digits, upper-case Latin, space and ( ) - . /. Banks'
# published lists differ on ヲ and the comma: both are left out, so no bank refuses a name
ZENGIN_NAME_CHARS = frozenset(
    "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨ"
    "ラリルレロワン" "ガギグゲゴザジズゼゾダヂヅデドバビブベボヴ" "パピプペポ"
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ" " ()-./")
_SMALL_KANA = dict(zip("ァィゥェォッャュョヮヵヶ", "アイウエオツヤユヨワカケ", strict=True))
ZENGIN_NAME_MAX = 30  # half-width characters in a transfer's payee name field
# the half-width katakana block (U+FF61-FF9F) by its full-width form; the voiced and
# semi-voiced marks map to the combining ones (U+3099, U+309A), which NFD splits off
_HALF_WIDTH = {unicodedata.normalize("NFKC", chr(c)): chr(c) for c in range(0xFF61, 0xFFA0)}


def iban_checksum_ok(iban: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to 10..35; mod 97 = 1.
    Check digits 00, 01 and 99 pass that test but ISO 7064 never produces them."""
    if not "02" <= iban[2:4] <= "98":
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def aba_checksum_ok(routing: str) -> bool:
    """ABA routing transit number: 3·(d1+d4+d7) + 7·(d2+d5+d8) + (d3+d6+d9) ≡ 0 (mod 10)."""
    d = [int(c) for c in routing]
    return (3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + d[2] + d[5] + d[8]) % 10 == 0


def normalize_iban(raw: str) -> str:
    """Without spaces or dashes, upper case; raises InvalidRequest unless a valid IBAN."""
    iban = _SEPARATORS.sub("", raw).upper()
    if not _IBAN_CHARS.fullmatch(iban):
        raise InvalidRequest("The IBAN is not well formed.", param="iban")
    expected = IBAN_LENGTHS.get(iban[:2])
    if expected is None:
        raise InvalidRequest(f"IBANs from country {iban[:2]} are not supported.", param="iban")
    if len(iban) != expected:
        raise InvalidRequest(f"An IBAN from {iban[:2]} has {expected} characters, this one "
                             f"has {len(iban)}.", param="iban")
    if not iban_checksum_ok(iban):
        raise InvalidRequest("The IBAN's check digits are wrong.", param="iban")
    return iban


def _routing(raw: str) -> str:
    routing = _SEPARATORS.sub("", raw)
    if not (len(routing) == 9 and _DIGITS.fullmatch(routing)):
        raise InvalidRequest("A routing number has 9 digits.", param="routing_number")
    if routing == "000000000" or not aba_checksum_ok(routing):
        raise InvalidRequest("The routing number is not a valid ABA routing number.",
                             param="routing_number")
    return routing


def _zengin_routing(raw: str) -> str:
    """Bank code (4 digits) + branch code (3 digits); "0001-001" and "0001 001" read too."""
    routing = _SEPARATORS.sub("", raw)
    if not (len(routing) == 7 and _DIGITS.fullmatch(routing)):
        raise InvalidRequest("A Japanese routing number is the 4-digit bank code followed by "
                             "the 3-digit branch code (7 digits).", param="routing_number")
    return routing


def _jp_account_number(raw: str) -> str:
    number = _SEPARATORS.sub("", raw)
    if not (len(number) == 7 and _DIGITS.fullmatch(number)):
        raise InvalidRequest("A Japanese account number has 7 digits.",
                             param="account_number")
    return number


def _width_folded(holder: str) -> str:
    """The name with full-width Latin, digits and punctuation (U+FF01-FF5E), half-width
    katakana and the ideographic space mapped onto one form, nothing else: NFKC would also
    turn ``Ⅳ`` into ``IV``, ``①`` into ``1`` and ``™`` into ``TM``, which the bank would
    not receive as given. NFC then joins a kana and its voiced mark (``ｶﾞ`` → ``ガ``)."""
    out = []
    for ch in holder:
        code = ord(ch)
        if 0xFF01 <= code <= 0xFF5E or 0xFF61 <= code <= 0xFF9F:
            out.append(unicodedata.normalize("NFKC", ch))
        else:
            out.append(" " if ch == "\u3000" else ch)
    return unicodedata.normalize("NFC", "".join(out))


def _zengin_holder(holder: str) -> str:
    """The holder's name in half-width Zengin characters (see :data:`ZENGIN_NAME_CHARS`),
    if the set can carry it and it fits the transfer's 30 characters."""
    folded = _width_folded(holder)
    for ch in folded:
        if ch in ZENGIN_NAME_CHARS:
            continue
        if ch in _SMALL_KANA:
            why = f"small kana are written large ({ch} as {_SMALL_KANA[ch]})"
        elif "a" <= ch <= "z":
            why = "Latin letters are upper case"
        else:
            why = f"{ch!r} is not in it"
        raise InvalidRequest(
            "A Japanese account holder's name must be in the Zengin character set "
            "(katakana, upper-case Latin letters, digits, space and ( ) - . /): "
            f"{why}.", param="account_holder_name")
    half = "".join(ch if ch.isascii() else "".join(
        _HALF_WIDTH[part] for part in unicodedata.normalize("NFD", ch)) for ch in folded)
    if len(half) > ZENGIN_NAME_MAX:
        raise InvalidRequest(
            f"A Japanese account holder's name is at most {ZENGIN_NAME_MAX} half-width "
            f"characters (a voiced mark counts as one); this one is {len(half)}.",
            param="account_holder_name")
    return half


def _jp_account_type(raw: str | None) -> str:
    kind = str(raw or "").strip().lower()
    if kind not in JP_ACCOUNT_TYPES:
        raise InvalidRequest("A Japanese bank account's account_type is futsu or toza.",
                             param="account_type")
    return kind


def _us_account_number(raw: str) -> str:
    number = _SEPARATORS.sub("", raw)
    if not (4 <= len(number) <= 17 and _DIGITS.fullmatch(number)):
        raise InvalidRequest("A US account number has 4 to 17 digits.", param="account_number")
    return number


@dataclass(frozen=True, slots=True)
class BankAccount:
    """A validated payout destination; build it with :func:`bank_account`. ``repr`` and
    :meth:`masked` show only the last 4 digits of the account."""

    account_holder_name: str
    country: str  # ISO 3166-1 alpha-2, upper case
    currency: str  # ISO 4217, lower case
    iban: str | None = None
    routing_number: str | None = None  # US: ABA routing number (public: it names the bank)
    account_number: str | None = None  # US or Japanese account number
    account_type: str | None = None  # JP only: futsu or toza

    @property
    def number(self) -> str:
        """The full account identifier (IBAN or account number): for the bank call only."""
        return self.iban or self.account_number or ""

    @property
    def last4(self) -> str:
        return self.number[-4:]

    @property
    def scheme(self) -> str:
        if self.iban:
            return "iban"
        return "zengin" if self.country == "JP" else "us_routing"

    @property
    def bank_code(self) -> str | None:
        """JP: the Zengin bank code (the routing number's first 4 digits)."""
        return self.routing_number[:4] if self.scheme == "zengin" and self.routing_number \
            else None

    @property
    def branch_code(self) -> str | None:
        """JP: the Zengin branch code (the routing number's last 3 digits)."""
        return self.routing_number[4:] if self.scheme == "zengin" and self.routing_number \
            else None

    def masked(self) -> dict[str, str | None]:
        """What the API, logs and dashboard show: never the full account number (a
        Japanese account's bank and branch codes and type name the bank, like a routing
        number, and are shown)."""
        shown: dict[str, str | None] = {
            "account_holder_name": self.account_holder_name,
            "country": self.country,
            "currency": self.currency,
            "last4": self.last4,
            "routing_number": self.routing_number,
            "scheme": self.scheme,
        }
        if self.scheme == "zengin":
            shown |= {"account_type": self.account_type, "bank_code": self.bank_code,
                      "branch_code": self.branch_code}
        return shown

    def __repr__(self) -> str:
        return (f"BankAccount(country={self.country!r}, currency={self.currency!r}, "
                f"scheme={self.scheme!r}, last4={self.last4!r})")


@dataclass(frozen=True, slots=True)
class MaskedBankAccount:
    """A stored destination as it is shown: everything but the full account number, which
    is kept sealed (payouts/payout_numbers.py)."""

    account_holder_name: str
    country: str
    currency: str
    last4: str
    routing_number: str | None = None  # None: an IBAN
    account_type: str | None = None

    @staticmethod
    def of(account: BankAccount) -> MaskedBankAccount:
        return MaskedBankAccount(account.account_holder_name, account.country,
                                 account.currency, account.last4, account.routing_number,
                                 account.account_type)


def bank_account(*, account_holder_name: str, country: str, currency: str,
                 iban: str | None = None, routing_number: str | None = None,
                 account_number: str | None = None,
                 account_type: str | None = None) -> BankAccount:
    """Validate a destination; raises InvalidRequest naming the offending parameter."""
    holder = " ".join(str(account_holder_name or "").split())
    if not holder:
        raise InvalidRequest("The account holder's name is required.",
                             param="account_holder_name")
    if len(holder) > MAX_HOLDER_NAME:
        raise InvalidRequest(f"The account holder's name has at most {MAX_HOLDER_NAME} "
                             "characters.", param="account_holder_name")
    country_code = str(country or "").strip().upper()
    if not _COUNTRY.fullmatch(country_code):
        raise InvalidRequest("country must be a two-letter ISO 3166 code.", param="country")
    try:
        ccy = normalize_currency(str(currency or ""))
    except UnknownCurrency:
        raise InvalidRequest(f"Invalid currency: {currency}.", param="currency") from None
    if iban is not None:
        if account_type is not None:
            raise InvalidRequest("account_type is for Japanese bank accounts (futsu or toza).",
                                 param="account_type")
        if routing_number is not None or account_number is not None:
            raise InvalidRequest("Give either an IBAN or a routing and account number, "
                                 "not both.", param="iban")
        normalized = normalize_iban(iban)
        if normalized[:2] != country_code:
            raise InvalidRequest(f"The IBAN is from {normalized[:2]}, not {country_code}.",
                                 param="country")
        return BankAccount(holder, country_code, ccy, iban=normalized)
    if routing_number is None or account_number is None:
        raise InvalidRequest("A bank account needs an IBAN, or a routing number and an "
                             "account number.",
                             param="account_number" if routing_number else "routing_number")
    if country_code == "JP":
        if ccy != "jpy":
            raise InvalidRequest("A Japanese bank account receives jpy.", param="currency")
        return BankAccount(_zengin_holder(holder), country_code, ccy,
                           routing_number=_zengin_routing(routing_number),
                           account_number=_jp_account_number(account_number),
                           account_type=_jp_account_type(account_type))
    if account_type is not None:
        raise InvalidRequest("account_type is for Japanese bank accounts (futsu or toza).",
                             param="account_type")
    if country_code != "US":
        raise InvalidRequest("Routing and account numbers are for US and Japanese accounts; "
                             "give an IBAN.", param="country")
    if ccy != "usd":
        raise InvalidRequest("A US bank account receives usd.", param="currency")
    return BankAccount(holder, country_code, ccy, routing_number=_routing(routing_number),
                       account_number=_us_account_number(account_number))
