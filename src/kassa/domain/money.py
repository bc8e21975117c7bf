"""Money as integer minor units of an ISO 4217 currency; never a float."""

from __future__ import annotations

from dataclasses import dataclass

# ISO 4217 exponents for the currencies kassa accepts. Stripe's zero-decimal and
# three-decimal currencies are listed explicitly; everything else has two decimals.
_ZERO_DECIMAL = frozenset(
    "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split()
)
_THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())
_TWO_DECIMAL = frozenset(
    """aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bmd bnd bob brl bsd bwp byn
    bzd cad cdf chf cny cop crc cve czk dkk dop dzd egp etb eur fjd fkp gbp gel gip gmd gtq
    gyd hkd hnl htg huf idr ils inr isk jmd kes kgs khr kyd kzt lak lbp lkr lrd lsl mad mdl
    mkd mmk mnt mop mur mvr mwk mxn myr mzn nad ngn nio nok npr nzd pab pen pgk php pkr pln
    qar ron rsd rub sar sbd scr sek sgd shp sle sos srd std szl thb tjs top try ttd twd tzs
    uah usd uyu uzs wst xcd yer zar zmw""".split()
)

EXPONENTS: dict[str, int] = {
    **{c: 0 for c in _ZERO_DECIMAL},
    **{c: 2 for c in _TWO_DECIMAL},
    **{c: 3 for c in _THREE_DECIMAL},
}

# Largest amount kassa accepts in one payment, in minor units (Stripe's limit is
# 99,999,999 in the smallest unit for most currencies); keeps every sum inside bigint.
MAX_AMOUNT = 99_999_999


class UnknownCurrency(ValueError):
    """The currency code is not an ISO 4217 code kassa supports."""


def normalize_currency(code: str) -> str:
    """Return the lower-case ISO code or raise UnknownCurrency."""
    lowered = code.strip().lower()
    if lowered not in EXPONENTS:
        raise UnknownCurrency(code)
    return lowered


def exponent(currency: str) -> int:
    return EXPONENTS[normalize_currency(currency)]


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in minor units (cents, yen, fils) of one currency."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.minor, bool) or not isinstance(self.minor, int):
            raise TypeError(f"Money.minor must be int, got {type(self.minor).__name__}")
        if self.currency not in EXPONENTS:
            raise UnknownCurrency(self.currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"currency mismatch: {self.currency} vs {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.minor < other.minor

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.minor <= other.minor

    @staticmethod
    def zero(currency: str) -> Money:
        return Money(0, currency)

    def __str__(self) -> str:
        exp = EXPONENTS[self.currency]
        sign = "-" if self.minor < 0 else ""
        whole, frac = divmod(abs(self.minor), 10**exp) if exp else (abs(self.minor), 0)
        return f"{sign}{whole}.{frac:0{exp}d} {self.currency.upper()}" if exp else (
            f"{sign}{whole} {self.currency.upper()}"
        )
