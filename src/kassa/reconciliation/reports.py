"""Settlement report parsers, one interface: ``parse(lines)`` yields a domain
``SettlementRow`` per money row of a text file read line by line (streamed: memory stays
flat however long the file). Each format's columns are read by header name, so a provider's
column order (Adyen's varies) does not matter.

- ``simulator``: kassa's simulator CSV (psp/simulator/settlement_report.py), minor units.
- ``stripe``: Stripe's itemized reports (``balance_change_from_activity.itemized.3`` and
  ``payout_reconciliation.itemized.5``): ``gross``/``fee`` in **major units** (decimal
  strings), ``reporting_category`` (charge, refund, dispute, fee …), ``charge_id``/
  ``source_id`` and ``payment_intent_id`` for references.
- ``adyen``: Adyen's Settlement details report: ``Type`` (Settled, Refunded, Chargeback,
  Fee, MerchantPayout …), ``Psp Reference``, ``Merchant Reference``, ``Gross Currency``,
  ``Gross Credit (GC)``/``Gross Debit (GC)``, ``Commission (NC)``, ``Markup (NC)``,
  ``Scheme Fees (NC)``, ``Interchange (NC)`` in major units; ``MerchantPayout`` rows are the
  batch's control total, not movements.

A row the PSP converted (charged in one currency, settled in another at its own rate) is
read with its presentment side as ``gross`` (what kassa's receivable holds: it is matched on
that) and its settlement side as ``settled`` with the PSP's ``exchange_rate``; its fee is in
the settlement currency (domain/reconciliation.py):

- ``simulator``: the optional columns ``settlement_currency``, ``settlement_gross`` and
  ``exchange_rate`` (``fee``/``net`` are then in the settlement currency).
- ``stripe``: ``customer_facing_currency``/``customer_facing_amount`` (what the customer
  was charged) other than ``currency``/``gross`` (what reached the balance); the report has
  no rate column, so the rate recorded is the one the amounts imply (``gross`` ÷
  ``customer_facing_amount``, 12 significant digits).
- ``adyen``: ``Gross Currency`` other than ``Net Currency``, with ``Exchange Rate``; the
  settled gross is the net plus the fees (all in NC), and must be the gross at that rate.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import Protocol

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


# a row as the import stages it: (row number, category, psp reference, kassa reference,
# gross, fee, currency, status, created) — SettlementRow's fields in plain values — and, for
# a row the PSP converted, (settlement currency, settled gross, exchange rate) after them
Staged = (tuple[int, str, str | None, str | None, int, int, str, str | None, int | None]
          | tuple[int, str, str | None, str | None, int, int, str, str | None, int | None,
                  str, int, Decimal])


class ReportParser(Protocol):
    format: str

    def parse(self, lines: Iterable[str]) -> Iterator[SettlementRow]: ...

    def staged(self, lines: Iterable[str]) -> Iterator[Staged]:
        """The rows as the import stages them (a parser may do it without building
        SettlementRows, when it checks the same rules)."""
        ...


def staged_from_rows(rows: Iterable[SettlementRow]) -> Iterator[Staged]:
    for r in rows:
        if r.settled is None or r.exchange_rate is None:
            yield (r.row_number, r.category.value, r.psp_reference, r.kassa_reference,
                   r.gross.minor, r.fee.minor, r.gross.currency, r.status, r.created)
        else:
            yield (r.row_number, r.category.value, r.psp_reference, r.kassa_reference,
                   r.gross.minor, r.fee.minor, r.gross.currency, r.status, r.created,
                   r.settled.currency, r.settled.minor, r.exchange_rate)


def _records(lines: Iterable[str], required: tuple[str, ...]
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


def _currency(code: str, line: int) -> str:
    try:
        return normalize_currency(code)
    except UnknownCurrency:
        raise ReportError(f"unknown currency {code!r}", line=line) from None


def _int(value: str, line: int, column: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ReportError(f"{column} is not an integer: {value!r}", line=line) from None


def _major(value: str, currency: str, line: int, column: str) -> int:
    if not value.strip():
        return 0
    try:
        return from_major(value.strip(), currency).minor
    except (ValueError, ArithmeticError, InvalidRequest) as exc:
        raise ReportError(f"{column}: {exc}", line=line) from None


def _rate(value: str, line: int, column: str) -> Decimal:
    try:
        return parse_rate(value)
    except InvalidRequest as exc:
        raise ReportError(f"{column}: {exc}", line=line) from None


def _implied_rate(settled: int, settled_ccy: str, gross: int, gross_ccy: str) -> Decimal:
    """The rate a conversion's two amounts imply (major units), 12 significant digits."""
    with localcontext() as ctx:
        ctx.prec = 12
        return (Decimal(settled).scaleb(-EXPONENTS[settled_ccy])
                / Decimal(gross).scaleb(-EXPONENTS[gross_ccy]))


def _converts(gross: int, gross_ccy: str, settled: int, settled_ccy: str,
              rate: Decimal) -> bool:
    """The PSP's settled gross is its gross at its rate, give or take its rounding (one
    minor unit, or 1 % of the amount where the PSP rounds each fee part on its own)."""
    expected = convert(Money(gross, gross_ccy), rate, settled_ccy).minor
    return abs(expected - settled) <= max(1, abs(expected) // 100)


def _row(line: int, category: Category, psp_reference: str | None,
         kassa_reference: str | None, gross: int, fee: int, currency: str,
         status: str | None, created: int | None, *, settled: Money | None = None,
         exchange_rate: Decimal | None = None) -> SettlementRow:
    try:
        return SettlementRow(line, category, psp_reference or None, kassa_reference or None,
                             Money(gross, currency),
                             Money(fee, currency if settled is None else settled.currency),
                             status, created, settled, exchange_rate)
    except ValueError as exc:
        raise ReportError(str(exc), line=line) from None


_SIGN_RULE = {"charge": 1, "refund": -1, "chargeback": -1, "chargeback_reversal": 1, "fee": 0}


class SimulatorReport:
    format = "simulator"
    COLUMNS = ("type", "psp_reference", "merchant_reference", "currency", "gross", "fee",
               "status", "created")
    # a simulator account that settles in another currency adds these (settlement_report.py)
    CONVERSION = ("settlement_currency", "settlement_gross", "exchange_rate")

    def staged(self, lines: Iterable[str]) -> Iterator[Staged]:
        """SettlementRow's rules (known type, gross's sign, a known currency, integers)
        checked on plain values: a million rows in seconds, not tens of seconds. A
        converted row is built as a SettlementRow (its rules are more)."""
        reader = csv.reader(lines)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise ReportError("the file is empty") from None
        missing = [c for c in self.COLUMNS if c not in header]
        if missing:
            raise ReportError(f"missing column(s) {', '.join(missing)}", line=1)
        width = len(header)
        t, p, m, c, g, f, s, w = (header.index(col) for col in self.COLUMNS)
        conversion = [header.index(col) if col in header else None for col in self.CONVERSION]
        if any(i is None for i in conversion) and any(i is not None for i in conversion):
            raise ReportError(f"the conversion columns are {', '.join(self.CONVERSION)},"
                              " all or none", line=1)
        sc, sg, sr = conversion
        known: dict[str, str] = {}
        for number, cells in enumerate(reader, start=2):
            if not cells:
                continue
            if len(cells) != width:
                raise ReportError(f"{len(cells)} cells, the header has {width}", line=number)
            kind = cells[t]
            sign = _SIGN_RULE.get(kind)
            if sign is None:
                raise ReportError(f"unknown type {kind!r}", line=number)
            code = cells[c]
            currency = known.get(code)
            if currency is None:
                currency = known[code] = _currency(code, number)
            try:
                gross, fee, created = int(cells[g]), int(cells[f]), int(cells[w])
            except ValueError:
                for column, i in (("gross", g), ("fee", f), ("created", w)):
                    _int(cells[i], number, column)
                raise
            if gross * sign < 0:
                raise ReportError(f"a {kind} row has a "
                                  f"{'positive' if sign > 0 else 'negative'} gross", line=number)
            if sc is not None and sg is not None and sr is not None and cells[sc].strip():
                yield from staged_from_rows([self._converted(
                    number, Category(kind), cells[p], cells[m], gross, fee, currency,
                    cells[s] or None, created, cells[sc], cells[sg], cells[sr])])
                continue
            yield (number, kind, cells[p] or None, cells[m] or None, gross, fee, currency,
                   cells[s] or None, created)

    @staticmethod
    def _converted(n: int, category: Category, psp_reference: str, kassa_reference: str,
                   gross: int, fee: int, currency: str, status: str | None, created: int,
                   settlement_currency: str, settlement_gross: str,
                   exchange_rate: str) -> SettlementRow:
        settled_ccy = _currency(settlement_currency, n)
        if settled_ccy == currency:
            return _row(n, category, psp_reference, kassa_reference, gross, fee, currency,
                        status, created)
        settled = _int(settlement_gross, n, "settlement_gross")
        rate = _rate(exchange_rate, n, "exchange_rate")
        if category is Category.FEE:
            raise ReportError("a fee row is not converted", line=n)
        if (settled > 0) != (gross > 0) or (settled < 0) != (gross < 0):
            raise ReportError("settlement_gross has another sign than gross", line=n)
        if not _converts(gross, currency, settled, settled_ccy, rate):
            raise ReportError(f"settlement_gross {settled} is not gross {gross} at rate "
                              f"{rate}", line=n)
        return _row(n, category, psp_reference, kassa_reference, gross, fee, currency,
                    status, created, settled=Money(settled, settled_ccy), exchange_rate=rate)

    def parse(self, lines: Iterable[str]) -> Iterator[SettlementRow]:
        for n, r in _records(lines, self.COLUMNS):
            if len({c in r for c in self.CONVERSION}) > 1:
                raise ReportError(f"the conversion columns are {', '.join(self.CONVERSION)},"
                                  " all or none", line=1)
            try:
                category = Category(r["type"])
            except ValueError:
                raise ReportError(f"unknown type {r['type']!r}", line=n) from None
            gross, fee = _int(r["gross"], n, "gross"), _int(r["fee"], n, "fee")
            currency, created = _currency(r["currency"], n), _int(r["created"], n, "created")
            if (r.get("settlement_currency") or "").strip():
                yield self._converted(n, category, r["psp_reference"],
                                      r["merchant_reference"], gross, fee, currency,
                                      r["status"] or None, created, r["settlement_currency"],
                                      r.get("settlement_gross", ""),
                                      r.get("exchange_rate", ""))
                continue
            yield _row(n, category, r["psp_reference"], r["merchant_reference"], gross, fee,
                       currency, r["status"] or None, created)


_STRIPE_CATEGORIES = {"charge": Category.CHARGE, "refund": Category.REFUND,
                      "dispute": Category.CHARGEBACK, "fee": Category.FEE,
                      # a won dispute: the amount (and Stripe's dispute fee) come back
                      "dispute_reversal": Category.CHARGEBACK_REVERSAL,
                      "other_adjustment": Category.FEE}
_STRIPE_STATUS = {Category.CHARGE: "captured", Category.REFUND: "refunded",
                  Category.CHARGEBACK: "charged_back",
                  Category.CHARGEBACK_REVERSAL: "reversed"}


class StripeItemizedReport:
    """Rows of other reporting categories (payouts, transfers, reversals …) are skipped:
    they are not movements of a payment's money at the PSP."""

    format = "stripe"
    COLUMNS = ("balance_transaction_id", "created_utc", "currency", "gross", "fee",
               "reporting_category")

    def staged(self, lines: Iterable[str]) -> Iterator[Staged]:
        return staged_from_rows(self.parse(lines))

    def parse(self, lines: Iterable[str]) -> Iterator[SettlementRow]:
        for n, r in _records(lines, self.COLUMNS):
            category = _STRIPE_CATEGORIES.get(r["reporting_category"])
            if category is None:
                continue
            ccy = _currency(r["currency"], n)
            gross = _major(r["gross"], ccy, n, "gross")
            if category is Category.FEE:  # Stripe writes a fee row as gross; kassa as fee
                gross, fee = 0, -gross
            else:
                fee = _major(r["fee"], ccy, n, "fee")
            conversion: dict[str, object] = {}
            facing = (r.get("customer_facing_currency") or "").strip()
            if category is not Category.FEE and facing and _currency(facing, n) != ccy:
                # Stripe converted: the customer paid customer_facing_amount in
                # customer_facing_currency (kassa's receivable); gross reached the balance
                presented_ccy = _currency(facing, n)
                presented = abs(_major(r.get("customer_facing_amount") or "", presented_ccy,
                                       n, "customer_facing_amount"))
                if presented == 0 or gross == 0:
                    raise ReportError("a converted row has both customer_facing_amount and"
                                      " gross", line=n)
                presented = presented if gross > 0 else -presented
                conversion = {"settled": Money(gross, ccy), "exchange_rate": _implied_rate(
                    gross, ccy, presented, presented_ccy)}
                gross, ccy = presented, presented_ccy
            # a charge is known to kassa by its PaymentIntent (the Stripe adapter's PSP
            # reference); a refund or dispute by its own id (source_id)
            if category is Category.CHARGE:
                reference = (r.get("payment_intent_id") or r.get("charge_id")
                             or r.get("source_id") or r["balance_transaction_id"])
            else:
                reference = r.get("source_id") or r["balance_transaction_id"]
            yield _row(n, category, reference, r.get("payment_metadata[kassa_attempt]"),
                       gross, fee, ccy, _STRIPE_STATUS.get(category),
                       _created(r["created_utc"], n), **conversion)  # type: ignore[arg-type]


_ADYEN_TYPES = {"Settled": Category.CHARGE, "Refunded": Category.REFUND,
                "Chargeback": Category.CHARGEBACK,
                "ChargebackReversed": Category.CHARGEBACK_REVERSAL, "Fee": Category.FEE,
                "MiscCosts": Category.FEE}
_ADYEN_FEES = ("Commission (NC)", "Markup (NC)", "Scheme Fees (NC)", "Interchange (NC)")


class AdyenSettlementDetails:
    """``MerchantPayout`` rows close a batch: the sum of the batch's net must equal it
    (the batch control); a batch that does not add up is refused whole."""

    format = "adyen"
    COLUMNS = ("Psp Reference", "Merchant Reference", "Type", "Creation Date",
               "Gross Currency", "Gross Debit (GC)", "Gross Credit (GC)", "Net Debit (NC)",
               "Net Credit (NC)", "Batch Number")

    def staged(self, lines: Iterable[str]) -> Iterator[Staged]:
        return staged_from_rows(self.parse(lines))

    def parse(self, lines: Iterable[str]) -> Iterator[SettlementRow]:
        batch_net: dict[str, int] = {}
        for n, r in _records(lines, self.COLUMNS):
            kind = r["Type"]
            ccy = _currency(r["Gross Currency"] or r.get("Net Currency", ""), n)
            net_ccy = _currency(r.get("Net Currency") or r["Gross Currency"], n)
            net = (_major(r["Net Credit (NC)"], net_ccy, n, "Net Credit (NC)")
                   - _major(r["Net Debit (NC)"], net_ccy, n, "Net Debit (NC)"))
            batch = r["Batch Number"]
            if kind == "MerchantPayout":  # the payout to the bank: -(sum of the batch)
                if batch_net.pop(batch, 0) + net != 0:
                    raise ReportError(f"batch {batch} does not add up to its payout", line=n)
                continue
            category = _ADYEN_TYPES.get(kind)
            if category is None:
                continue
            gross = (_major(r["Gross Credit (GC)"], ccy, n, "Gross Credit (GC)")
                     - _major(r["Gross Debit (GC)"], ccy, n, "Gross Debit (GC)"))
            listed = sum(_major(r.get(c, ""), net_ccy, n, c) for c in _ADYEN_FEES)
            batch_net[batch] = batch_net.get(batch, 0) + net
            if net_ccy != ccy:
                yield self._converted(n, r, category, gross, ccy, net, net_ccy, listed)
                continue
            # what Adyen kept is gross - net: Commission, Markup, Scheme Fees, Interchange
            fee = gross - net
            if category is not Category.FEE and abs(fee) != listed and listed:
                raise ReportError(f"net {net} is not gross {gross} less the fees {listed}",
                                  line=n)
            yield _row(n, category, r["Psp Reference"], r["Merchant Reference"], gross, fee,
                       ccy, _STRIPE_STATUS.get(category), _created(r["Creation Date"], n))

    @staticmethod
    def _converted(n: int, r: dict[str, str], category: Category, gross: int, ccy: str,
                   net: int, net_ccy: str, listed: int) -> SettlementRow:
        """Adyen charged in GC and settled in NC at ``Exchange Rate``: the settled gross
        is the net plus the fees Adyen lists (NC), which must be the gross at that rate."""
        if category is Category.FEE:
            raise ReportError("a converted fee row (gross and net currencies differ) is not "
                              "a movement kassa can match", line=n)
        if not (r.get("Exchange Rate") or "").strip():
            raise ReportError("a converted row (gross and net currencies differ) has no "
                              "Exchange Rate", line=n)
        rate = _rate(r["Exchange Rate"], n, "Exchange Rate")
        settled = net + listed  # what Adyen kept is settled - net, as gross - net unconverted
        if not _converts(gross, ccy, settled, net_ccy, rate):
            raise ReportError(f"the settled gross {settled} ({net_ccy}: net plus fees) is not"
                              f" gross {gross} ({ccy}) at Exchange Rate {rate}", line=n)
        return _row(n, category, r["Psp Reference"], r["Merchant Reference"], gross,
                    settled - net, ccy, _STRIPE_STATUS.get(category),
                    _created(r["Creation Date"], n), settled=Money(settled, net_ccy),
                    exchange_rate=rate)


def _created(value: str, line: int) -> int | None:
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


PARSERS: dict[str, ReportParser] = {p.format: p for p in (
    SimulatorReport(), StripeItemizedReport(), AdyenSettlementDetails())}
FORMAT_OF_PSP = {"simulator": "simulator", "stripe": "stripe", "adyen": "adyen"}
