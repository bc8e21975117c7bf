"""Foreign exchange: rates, the conversion of a payment into its merchant's settlement
currency, and the ``fx:<ccy>`` trading entries that keep each currency balanced on its own.

Design (README "Multi-currency"):

- A **rate** says 1 ``base`` = ``rate`` ``quote`` (Stripe's ``exchange_rate``: the amount in
  the presentment currency times the rate is the amount in the settlement currency). It is
  an exact decimal (``Decimal``, NUMERIC in PostgreSQL), never a float, and carries its
  ``source`` and the provider's ``as_of``. Only the direct pair is used: an inverse rate
  would be inexact, so a EUR payment for a USD merchant needs a ``eur → usd`` row.
- **When**: the rate is fixed when the payment is confirmed (Stripe converts at charge
  time): the customer's authorisation and the merchant's amount then rest on one rate,
  and a capture days later, a refund or a dispute all reuse it. The payment keeps the rate
  and the rate row's id. A rate older than the configured maximum age is not usable; a
  payment with no usable rate is refused before anything is written or charged.
- **Rounding**: the settlement amount is ``presentment major × rate`` rounded half-even
  (banker's rounding) to the settlement currency's minor unit (ISO 4217 exponent of the
  currency table: JPY 0, USD 2, KWD/BHD 3). Fees are computed on the settled amount, in
  the settlement currency.
- **Postings** (domain/ledger.py builds them; :func:`bridge` adds the trading legs): the
  PSP receivable stays in the presentment currency (that is what the PSP owes and reports),
  the merchant's accounts and fees are in the settlement currency, and per layer the
  trading accounts take the other side: Dr psp receivable EUR / Cr ``fx:eur`` EUR and
  Dr ``fx:usd`` USD / Cr merchant pending USD (net) / Cr revenue:fees USD.
- **Refunds and dispute debits** take from the merchant the presentment amount converted
  at the payment's original rate (so a full refund takes back exactly what the capture
  credited; a partial refund takes the running total refunded, converted, less what the
  earlier refunds took — services/refunds.py — so partial refunds add up to the credited
  gross, never more; a refund failure gives back exactly what its refund took; a
  chargeback takes the top slice, :func:`dispute_share`, so refunds plus chargeback never
  exceed the credited gross either, and a won one gives back exactly what it took). The
  trading legs are at the rate current when the refund is posted (the operator buys the
  presentment currency back at today's price);
  the difference between the two settlement amounts is the operator's realised FX gain
  or loss, posted to :data:`FX_GAIN_LOSS` in the settlement currency (debit = loss).
  Without a usable current rate the original rate is used and the difference is zero.
  This is the accounting of a realised FX difference on settling a foreign-currency item:
  the merchant, debited at the original rate, carries no FX risk after the sale; the
  operator, who holds the trading positions, books the difference.
- **Proof**: a converted transaction stores its trading rate; ``kassa ledger verify``
  checks, per layer, that the ``fx:<settlement>`` leg equals the ``fx:<presentment>`` leg
  converted at that rate (:func:`trading_mismatch`).
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext
from typing import Any

from kassa.domain.errors import InvalidRequest
from kassa.domain.money import EXPONENTS, Money, UnknownCurrency, normalize_currency

FX_PREFIX = "fx:"
FX_GAIN_LOSS = "revenue:fx_gain_loss"  # the operator's realised FX gain (credit) or loss
MAX_RATE_DIGITS = 24  # significant digits a rate may have (providers give 6-12)
# no two currencies are this far apart (VND per KWD is ~10**5): outside is a broken feed
MIN_RATE, MAX_RATE = Decimal("1e-12"), Decimal("1e12")


def trading_account(currency: str) -> str:
    return f"{FX_PREFIX}{currency}"


class RateUnavailable(InvalidRequest):
    """No usable rate converts the payment's currency into the merchant's: a 400."""

    def __init__(self, base: str, quote: str, max_age: int) -> None:
        super().__init__(
            f"No exchange rate from {base} to {quote} newer than {max_age} seconds is "
            "available; load one (kassa fx load / kassa fx pull) and retry.",
            param="currency", code="fx_rate_unavailable")


@dataclass(frozen=True, slots=True)
class Rate:
    """1 ``base`` = ``rate`` ``quote``, as ``source`` gave it for the moment ``as_of``."""

    base: str
    quote: str
    rate: Decimal
    source: str
    as_of: int
    id: str = ""

    def usable(self, *, now: int, max_age: int) -> bool:
        return self.as_of <= now and now - self.as_of <= max_age


def parse_rate(value: object) -> Decimal:
    """An exact positive decimal rate from text or a number given as text; no floats."""
    if isinstance(value, float) or isinstance(value, bool):
        raise InvalidRequest(f"Rate {value!r} must be given as a decimal string.",
                             param="rate")
    try:
        rate = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        raise InvalidRequest(f"Not a decimal rate: {value!r}.", param="rate") from None
    if not rate.is_finite() or rate <= 0:
        raise InvalidRequest(f"A rate must be a positive finite decimal: {value!r}.",
                             param="rate")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise InvalidRequest(f"Rate {value!r} is outside {MIN_RATE}..{MAX_RATE}.",
                             param="rate")
    if len(rate.normalize().as_tuple().digits) > MAX_RATE_DIGITS:
        raise InvalidRequest(f"Rate {value!r} has more than {MAX_RATE_DIGITS} digits.",
                             param="rate")
    return rate.normalize() if rate == rate.to_integral_value() else rate


def convert(amount: Money, rate: Decimal, to: str) -> Money:
    """``amount`` in ``to``: major units × rate, rounded half-even to ``to``'s minor unit."""
    with localcontext() as ctx:
        ctx.prec = 80  # exact: a bigint amount times a 24-digit rate fits many times over
        exact = Decimal(amount.minor).scaleb(EXPONENTS[to] - EXPONENTS[amount.currency]) * rate
        minor = exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    return Money(int(minor), to)


@dataclass(frozen=True, slots=True)
class Conversion:
    """A payment's fixed conversion: ``presentment`` → ``settlement`` at ``rate``."""

    presentment: str
    settlement: str
    rate: Decimal
    rate_id: str

    def settle(self, amount: Money) -> Money:
        if amount.currency != self.presentment:
            raise ValueError(f"{amount} is not in {self.presentment}")
        return convert(amount, self.rate, self.settlement)


def dispute_share(conversion: Conversion, *, received: Money, withdrawn: Money) -> Money:
    """What a chargeback of ``withdrawn`` takes from the merchant (settlement currency):
    the top slice of the converted capture, ``settle(received) − settle(received −
    withdrawn)``. Refunds take the converted running total from the bottom
    (services/refunds.py) and a chargeback withdraws at most what they left, so refunds
    plus the chargeback never take more than the capture credited; converting the
    withdrawn amount alone would overshoot by a minor unit when both round up."""
    if withdrawn.minor > received.minor:
        raise ValueError(f"a chargeback of {withdrawn} exceeds the capture {received}")
    return Money(conversion.settle(received).minor
                 - conversion.settle(received - withdrawn).minor, conversion.settlement)


def bridge(entries: Iterable[Any], entry: Any) -> list[Any]:
    """``entries`` plus, per layer and currency that does not sum to zero, the trading
    entry that balances it (``fx:<ccy>``); ``entry(account, money, layer)`` builds one.
    With one currency per layer nothing is added."""
    out = list(entries)
    sums: dict[tuple[Any, str], int] = defaultdict(int)
    for e in out:
        sums[(e.layer, e.amount.currency)] += e.amount.minor
    for (layer, ccy), total in sums.items():
        if total:
            out.append(entry(trading_account(ccy), Money(-total, ccy), layer))
    return out


def trading_mismatch(legs: Mapping[str, int], rate: Decimal) -> str | None:
    """Why one layer's trading legs of a conversion disagree with its rate (None: they
    agree). ``legs``: trading account → signed amount. Exactly two currencies must appear,
    and one leg must be the other's conversion at ``rate``, negated (the ledger does not
    record which side was the presentment currency, so either reading may hold)."""
    if len(legs) != 2:
        return f"{len(legs)} trading currencies (expected 2): {dict(legs)}"
    (a_acc, a), (b_acc, b) = sorted(legs.items())
    a_ccy, b_ccy = a_acc.removeprefix(FX_PREFIX), b_acc.removeprefix(FX_PREFIX)
    if a_ccy not in EXPONENTS or b_ccy not in EXPONENTS:
        return f"unknown trading currency in {dict(legs)}"
    if convert(Money(a, a_ccy), rate, b_ccy).minor == -b or \
            convert(Money(b, b_ccy), rate, a_ccy).minor == -a:
        return None
    return f"{dict(legs)} is not a conversion at {rate}"


# ------------------------------------------------------------------ reading rate files


def _timestamp(value: str) -> int:
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(f"Not a time: {value!r} (unix seconds or ISO 8601).",
                             param="as_of") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _currency(value: object, param: str) -> str:
    try:
        return normalize_currency(str(value))
    except UnknownCurrency:
        raise InvalidRequest(f"Invalid currency: {value!r}.", param=param) from None


def rate_of(*, base: object, quote: object, rate: object, as_of: object,
            source: str) -> Rate:
    b, q = _currency(base, "base"), _currency(quote, "quote")
    if b == q:
        raise InvalidRequest(f"A rate converts between two currencies, not {b} to itself.",
                             param="quote")
    return Rate(b, q, parse_rate(rate), source.strip() or "unknown",
                _timestamp(str(as_of)))


CSV_COLUMNS = ("base", "quote", "rate", "as_of")


def read_csv(text: str, *, default_source: str) -> Iterator[Rate]:
    """Rates from CSV with a header naming ``base,quote,rate,as_of`` and optionally
    ``source`` (any order); line numbers in errors count the header as line 1."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise InvalidRequest(f"The rates file lacks the column(s) {', '.join(missing)}.",
                             param="file")
    for line, row in enumerate(reader, start=2):
        try:
            yield rate_of(base=row["base"], quote=row["quote"], rate=row["rate"],
                          as_of=row["as_of"], source=row.get("source") or default_source)
        except InvalidRequest as exc:
            raise InvalidRequest(f"line {line}: {exc}", param=exc.param) from None


def read_provider(body: str, *, content_type: str, default_source: str) -> list[Rate]:
    """A provider's answer: CSV as :func:`read_csv`, or JSON
    ``{"base": "eur", "as_of": …, "source": …, "rates": {"usd": "1.0842", …}}`` (rates as
    decimal strings; a JSON number is read from its text, never through a float)."""
    if "csv" in content_type or not body.lstrip().startswith("{"):
        return list(read_csv(body, default_source=default_source))
    try:
        doc = json.loads(body, parse_float=Decimal, parse_int=Decimal)
    except ValueError:
        raise InvalidRequest("The provider's answer is not JSON.", param="body") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("rates"), dict):
        raise InvalidRequest("The provider's JSON has no 'rates' object.", param="rates")
    source = str(doc.get("source") or default_source)
    return [rate_of(base=doc.get("base"), quote=quote, rate=value,
                    as_of=doc.get("as_of"), source=source)
            for quote, value in doc["rates"].items()]
