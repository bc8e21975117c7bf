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
  ``customer_facing_amount``, 12 significant digits, within parse_rate's bounds); its
  ``net`` column, when present, must be ``gross - fee``.
- ``adyen``: ``Gross Currency`` other than ``Net Currency``, with ``Exchange Rate``; the
  settled gross is the net plus the fees (all in NC), and must be the gross at that rate.
  Without a fee breakdown (all four fee columns blank) the settled gross is the gross at
  Adyen's rate and the fee what Adyen kept of it (``settled - net``), as for an
  unconverted row (``gross - net`` whatever the breakdown says): what Adyen kept is its
  fee, not an FX loss.

A settled gross that is not the gross at the PSP's rate beyond the PSP's rounding (one minor
unit, plus one per fee part Adyen lists: it rounds each on its own) is not refused and not
posted: the row carries ``expected_settled`` (the gross at the PSP's rate) and the import
records an ``amount_mismatch`` on the settled side (db/reconciliation.py flag_conversions).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Protocol

from kassa.domain.fx import convert
from kassa.domain.money import Money
from kassa.domain.reconciliation import Category, SettlementRow
from kassa.reconciliation import report_cells as rc
from kassa.reconciliation.report_cells import ReportError as ReportError  # re-exported

# a row as the import stages it: (row number, category, psp reference, kassa reference,
# gross, fee, currency, status, created) — SettlementRow's fields in plain values — and, for
# a row the PSP converted, (settlement currency, settled gross, exchange rate, expected
# settled gross or None) after them
Staged = (tuple[int, str, str | None, str | None, int, int, str, str | None, int | None]
          | tuple[int, str, str | None, str | None, int, int, str, str | None, int | None,
                  str, int, Decimal, int | None])


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
                   r.settled.currency, r.settled.minor, r.exchange_rate,
                   None if r.expected_settled is None else r.expected_settled.minor)


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
                currency = known[code] = rc.currency(code, number)
            try:
                gross, fee, created = int(cells[g]), int(cells[f]), int(cells[w])
            except ValueError:
                for column, i in (("gross", g), ("fee", f), ("created", w)):
                    rc.integer(cells[i], number, column)
                raise
            if gross * sign < 0:
                raise ReportError(f"a {kind} row has a "
                                  f"{'positive' if sign > 0 else 'negative'} gross", line=number)
            if sc is not None and sg is not None and sr is not None and (
                    cells[sc].strip() or cells[sg].strip() or cells[sr].strip()):
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
        if not settlement_currency.strip():
            if settlement_gross.strip() or exchange_rate.strip():
                raise ReportError("settlement_gross or exchange_rate without a"
                                  " settlement_currency", line=n)
            return rc.row(n, category, psp_reference, kassa_reference, gross, fee, currency,
                        status, created)
        settled_ccy = rc.currency(settlement_currency, n)
        if settled_ccy == currency:  # settled as charged: the other cells must say so
            if settlement_gross.strip() and rc.integer(settlement_gross, n,
                                                 "settlement_gross") != gross:
                raise ReportError(f"settlement_gross {settlement_gross} in the gross's own"
                                  f" currency is not gross {gross}", line=n)
            if exchange_rate.strip() and rc.rate(exchange_rate, n, "exchange_rate") != 1:
                raise ReportError(f"exchange_rate {exchange_rate} for a row settled in its"
                                  " own currency", line=n)
            return rc.row(n, category, psp_reference, kassa_reference, gross, fee, currency,
                        status, created)
        settled = rc.integer(settlement_gross, n, "settlement_gross")
        rate = rc.rate(exchange_rate, n, "exchange_rate")
        if category is Category.FEE:
            raise ReportError("a fee row is not converted", line=n)
        if (settled > 0) != (gross > 0) or (settled < 0) != (gross < 0):
            raise ReportError("settlement_gross has another sign than gross", line=n)
        expected = rc.unconverted(gross, currency, settled, settled_ccy, rate)
        return rc.row(n, category, psp_reference, kassa_reference, gross, fee, currency,
                    status, created, settled=Money(settled, settled_ccy), exchange_rate=rate,
                    expected_settled=None if expected is None else Money(expected,
                                                                          settled_ccy))

    def parse(self, lines: Iterable[str]) -> Iterator[SettlementRow]:
        for n, r in rc.records(lines, self.COLUMNS):
            if len({c in r for c in self.CONVERSION}) > 1:
                raise ReportError(f"the conversion columns are {', '.join(self.CONVERSION)},"
                                  " all or none", line=1)
            try:
                category = Category(r["type"])
            except ValueError:
                raise ReportError(f"unknown type {r['type']!r}", line=n) from None
            gross, fee = rc.integer(r["gross"], n, "gross"), rc.integer(r["fee"], n, "fee")
            currency = rc.currency(r["currency"], n)
            created = rc.integer(r["created"], n, "created")
            if any((r.get(c) or "").strip() for c in self.CONVERSION):
                yield self._converted(n, category, r["psp_reference"],
                                      r["merchant_reference"], gross, fee, currency,
                                      r["status"] or None, created, r["settlement_currency"],
                                      r.get("settlement_gross", ""),
                                      r.get("exchange_rate", ""))
                continue
            yield rc.row(n, category, r["psp_reference"], r["merchant_reference"], gross, fee,
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
        for n, r in rc.records(lines, self.COLUMNS):
            category = _STRIPE_CATEGORIES.get(r["reporting_category"])
            if category is None:
                continue
            ccy = rc.currency(r["currency"], n)
            gross = rc.major(r["gross"], ccy, n, "gross")
            if category is Category.FEE:  # Stripe writes a fee row as gross; kassa as fee
                gross, fee = 0, -gross
            else:
                fee = rc.major(r["fee"], ccy, n, "fee")
            if (r.get("net") or "").strip():  # what reached the balance: gross less fee
                net = rc.major(r["net"], ccy, n, "net")
                if net != gross - fee:
                    raise ReportError(f"net {r['net']} is not gross {r['gross']} less fee"
                                      f" {r['fee']}", line=n)
            conversion: dict[str, object] = {}
            facing = (r.get("customer_facing_currency") or "").strip()
            if category is not Category.FEE and facing and rc.currency(facing, n) != ccy:
                # Stripe converted: the customer paid customer_facing_amount in
                # customer_facing_currency (kassa's receivable); gross reached the balance
                presented_ccy = rc.currency(facing, n)
                presented = rc.major(r.get("customer_facing_amount") or "", presented_ccy,
                                   n, "customer_facing_amount")
                if presented == 0 or gross == 0:
                    raise ReportError("a converted row has both customer_facing_amount and"
                                      " gross", line=n)
                # Stripe may write a refund's customer_facing_amount unsigned (the amount
                # refunded); a negative one on a charge contradicts it
                if presented < 0 < gross:
                    raise ReportError("customer_facing_amount has another sign than gross",
                                      line=n)
                presented = abs(presented) if gross > 0 else -abs(presented)
                conversion = {"settled": Money(gross, ccy), "exchange_rate": rc.implied_rate(
                    gross, ccy, presented, presented_ccy, n)}
                gross, ccy = presented, presented_ccy
            # a charge is known to kassa by its PaymentIntent (the Stripe adapter's PSP
            # reference); a refund or dispute by its own id (source_id)
            if category is Category.CHARGE:
                reference = (r.get("payment_intent_id") or r.get("charge_id")
                             or r.get("source_id") or r["balance_transaction_id"])
            else:
                reference = r.get("source_id") or r["balance_transaction_id"]
            yield rc.row(n, category, reference, r.get("payment_metadata[kassa_attempt]"),
                       gross, fee, ccy, _STRIPE_STATUS.get(category),
                       rc.created(r["created_utc"], n), **conversion)  # type: ignore[arg-type]


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
        for n, r in rc.records(lines, self.COLUMNS):
            kind = r["Type"]
            ccy = rc.currency(r["Gross Currency"] or r.get("Net Currency", ""), n)
            net_ccy = rc.currency(r.get("Net Currency") or r["Gross Currency"], n)
            net = (rc.major(r["Net Credit (NC)"], net_ccy, n, "Net Credit (NC)")
                   - rc.major(r["Net Debit (NC)"], net_ccy, n, "Net Debit (NC)"))
            batch = r["Batch Number"]
            if kind == "MerchantPayout":  # the payout to the bank: -(sum of the batch)
                if batch_net.pop(batch, 0) + net != 0:
                    raise ReportError(f"batch {batch} does not add up to its payout", line=n)
                continue
            category = _ADYEN_TYPES.get(kind)
            if category is None:
                continue
            gross = (rc.major(r["Gross Credit (GC)"], ccy, n, "Gross Credit (GC)")
                     - rc.major(r["Gross Debit (GC)"], ccy, n, "Gross Debit (GC)"))
            parts = [rc.major(r.get(c, ""), net_ccy, n, c) for c in _ADYEN_FEES
                     if (r.get(c) or "").strip()]
            listed = sum(parts)
            batch_net[batch] = batch_net.get(batch, 0) + net
            if net_ccy != ccy:
                yield self._converted(n, r, category, gross, ccy, net, net_ccy,
                                      listed if parts else None, len(parts))
                continue
            # what Adyen kept is gross - net: Commission, Markup, Scheme Fees, Interchange
            fee = gross - net
            if category is not Category.FEE and abs(fee) != listed and listed:
                raise ReportError(f"net {net} is not gross {gross} less the fees {listed}",
                                  line=n)
            yield rc.row(n, category, r["Psp Reference"], r["Merchant Reference"], gross, fee,
                       ccy, _STRIPE_STATUS.get(category), rc.created(r["Creation Date"], n))

    @staticmethod
    def _converted(n: int, r: dict[str, str], category: Category, gross: int, ccy: str,
                   net: int, net_ccy: str, listed: int | None, parts: int) -> SettlementRow:
        """Adyen charged in GC and settled in NC at ``Exchange Rate``: the settled gross
        is the net plus the fees Adyen lists (NC), which must be the gross at that rate
        (else an amount_mismatch). ``listed`` None: no breakdown, the settled gross is the
        gross at that rate and the fee what Adyen kept of it (rounded half-even, as
        convert rounds) — chosen over refusing the row because the unconverted rule is the
        same (fee = gross - net whatever the breakdown says) and Adyen's net is what the
        bank receives."""
        if category is Category.FEE:
            raise ReportError("a converted fee row (gross and net currencies differ) is not "
                              "a movement kassa can match", line=n)
        if not (r.get("Exchange Rate") or "").strip():
            raise ReportError("a converted row (gross and net currencies differ) has no "
                              "Exchange Rate", line=n)
        rate = rc.rate(r["Exchange Rate"], n, "Exchange Rate")
        if listed is None:
            settled = convert(Money(gross, ccy), rate, net_ccy).minor
            expected = None
        else:  # what Adyen kept is settled - net, as gross - net unconverted
            settled = net + listed
            expected = rc.unconverted(gross, ccy, settled, net_ccy, rate, parts=parts)
        if settled == 0 or (settled > 0) != (gross > 0):
            raise ReportError(f"the settled gross {settled} ({net_ccy}: net plus fees) has"
                              f" another sign than gross {gross} ({ccy})", line=n)
        return rc.row(n, category, r["Psp Reference"], r["Merchant Reference"], gross,
                    settled - net, ccy, _STRIPE_STATUS.get(category),
                    rc.created(r["Creation Date"], n), settled=Money(settled, net_ccy),
                    exchange_rate=rate,
                    expected_settled=None if expected is None else Money(expected, net_ccy))


PARSERS: dict[str, ReportParser] = {p.format: p for p in (
    SimulatorReport(), StripeItemizedReport(), AdyenSettlementDetails())}
FORMAT_OF_PSP = {"simulator": "simulator", "stripe": "stripe", "adyen": "adyen"}
