"""The cells of a settlement report's rows, read and checked for reconciliation/reports.py's
parsers: a CSV's records by header name, currencies, integers, major-unit amounts, dates,
rates (parse_rate's rules) and a converted row's checks against its rate — each a
``ReportError`` naming the line when a cell is not what the format says."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal, localcontext

from kassa.domain.currencies import from_major
from kassa.domain.errors import InvalidRequest
from kassa.domain.fx import convert, parse_rate
from kassa.domain.money import EXPONENTS, Money, UnknownCurrency, normalize_currency
from kassa.domain.reconciliation import Category, SettlementRow


class ReportError(ValueError):
    """The file is not a settlement report of this format (``line`` says where)."""

    def __init__(self, message: str, *, line: int | None = None):
        super().__init__(message if line is None else f"line {line}: {message}")
        self.line = line


def records(lines: Iterable[str], required: tuple[str, ...]
            ) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.reader(lines)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ReportError("the file is empty") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise ReportError(f"missing column(s) {', '.join(missing)}", line=1)
    for number, cells in enumerate(reader, start=2):
        if not cells:
            continue
        if len(cells) != len(header):
            raise ReportError(f"{len(cells)} cells, the header has {len(header)}", line=number)
        yield number, dict(zip(header, cells, strict=True))


def currency(code: str, line: int) -> str:
    try:
        return normalize_currency(code)
    except UnknownCurrency:
        raise ReportError(f"unknown currency {code!r}", line=line) from None


def integer(value: str, line: int, column: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ReportError(f"{column} is not an integer: {value!r}", line=line) from None


def major(value: str, currency: str, line: int, column: str) -> int:
    if not value.strip():
        return 0
    try:
        return from_major(value.strip(), currency).minor
    except (ValueError, ArithmeticError, InvalidRequest) as exc:
        raise ReportError(f"{column}: {exc}", line=line) from None


def rate(value: str | Decimal, line: int, column: str) -> Decimal:
    try:
        return parse_rate(value)
    except InvalidRequest as exc:
        raise ReportError(f"{column}: {exc}", line=line) from None


def implied_rate(settled: int, settled_ccy: str, gross: int, gross_ccy: str,
                  line: int) -> Decimal:
    """The rate a conversion's two amounts imply (major units), 12 significant digits, a
    rate parse_rate accepts (else the row is not a conversion kassa can post)."""
    with localcontext() as ctx:
        ctx.prec = 12
        implied = (Decimal(settled).scaleb(-EXPONENTS[settled_ccy])
                   / Decimal(gross).scaleb(-EXPONENTS[gross_ccy]))
    return rate(implied, line, "the rate gross / customer_facing_amount implies")


def unconverted(gross: int, gross_ccy: str, settled: int, settled_ccy: str,
                 rate: Decimal, *, parts: int = 0) -> int | None:
    """None if the PSP's settled gross is its gross at its rate, give or take its rounding:
    one minor unit, plus one per fee part it rounds on its own (Adyen's ``parts``); else
    the gross at its rate (what it should have settled: an amount_mismatch)."""
    expected = convert(Money(gross, gross_ccy), rate, settled_ccy).minor
    return None if abs(expected - settled) <= 1 + parts else expected


def row(line: int, category: Category, psp_reference: str | None,
         kassa_reference: str | None, gross: int, fee: int, currency: str,
         status: str | None, created: int | None, *, settled: Money | None = None,
         exchange_rate: Decimal | None = None,
         expected_settled: Money | None = None) -> SettlementRow:
    try:
        return SettlementRow(line, category, psp_reference or None, kassa_reference or None,
                             Money(gross, currency),
                             Money(fee, currency if settled is None else settled.currency),
                             status, created, settled, exchange_rate, expected_settled)
    except ValueError as exc:
        raise ReportError(str(exc), line=line) from None


def created(value: str, line: int) -> int | None:
    if not value.strip():
        return None
    text = value.strip()
    try:
        if text.isdigit():
            return int(text)
        moment = datetime.fromisoformat(text.replace(" ", "T").replace("Z", "+00:00"))
    except ValueError:
        raise ReportError(f"unreadable date {value!r}", line=line) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())
