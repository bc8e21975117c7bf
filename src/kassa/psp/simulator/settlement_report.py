"""The simulator's daily settlement report: a CSV of what it really processed on one UTC day —
captures, refunds and chargebacks, each with the fee the acquirer kept — and, on request,
known discrepancies injected into it (rows dropped, altered or invented), listed in a
manifest so a test can check that reconciliation finds exactly those.

Columns (amounts in minor units, as the simulator's API): ``type`` (charge | refund |
chargeback | chargeback_reversal | fee), ``psp_reference`` (the authorization ``sim_…``, the
refund operation ``simop_…``, the dispute ``sdp_…``), ``merchant_reference`` (the
idempotency key kassa sent: its attempt id), ``currency``, ``gross``, ``fee``, ``net``,
``status``, ``created``.

A chargeback is a row on the day the cardholder's bank took the money (``charged_back``,
negative gross), and stays in that day's report when the dispute is later won; the win is a
row of its own on the day it was decided (``chargeback_reversal``, status ``reversed``): the
amount comes back (positive gross) with the chargeback fee (negative fee), as Stripe returns
both. So each day's report says what moved that day, and reconciliation matches each row to
the dispute's withdrawal or reinstatement.

Pricing (the acquirer's, not kassa's): 1.50 % + 0.10 per charge, 15.00 per chargeback
(returned when won), refunds free — ``PRICING`` below; kassa holds the same contract in
reconciliation/contracts.py.

An account configured with a ``settlement_currency`` and ``settlement_rates`` (chaos.py)
pays out in that currency: a movement in a currency it has a rate for is converted at that
rate (half-even to the minor unit) and the report adds ``settlement_currency``,
``settlement_gross`` and ``exchange_rate``; its ``fee`` and ``net`` are then in the
settlement currency (the fee priced on the settled gross). Without that configuration the
report is byte for byte what it was.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from kassa.domain.fees import FeeSchedule
from kassa.domain.fx import convert, parse_rate
from kassa.domain.money import EXPONENTS, Money
from kassa.psp.simulator.books import Acquirer
from kassa.psp.simulator.books.records import CHARGEBACK

PRICING = FeeSchedule(percent_bps=150, fixed_major_cents=10)
CHARGEBACK_FEE_MAJOR_CENTS = 1500
COLUMNS = ("type", "psp_reference", "merchant_reference", "currency", "gross", "fee", "net",
           "status", "created")
CONVERSION_COLUMNS = ("settlement_currency", "settlement_gross", "exchange_rate")
INJECTABLE = ("missing_in_kassa", "missing_at_psp", "amount_mismatch", "fee_mismatch",
              "currency_mismatch", "status_mismatch")


@dataclass(frozen=True, slots=True)
class ReportRow:
    type: str
    psp_reference: str
    merchant_reference: str
    currency: str
    gross: int
    fee: int
    status: str
    created: int
    # converted by the account (settled_in): the gross it paid, in which currency, at what
    # rate; fee and net are then in settlement_currency
    settlement_currency: str | None = None
    settlement_gross: int | None = None
    exchange_rate: Decimal | None = None

    @property
    def net(self) -> int:
        return (self.gross if self.settlement_gross is None else self.settlement_gross) \
            - self.fee

    def cells(self) -> list[str]:
        return [self.type, self.psp_reference, self.merchant_reference, self.currency,
                str(self.gross), str(self.fee), str(self.net), self.status,
                str(self.created)]

    def conversion_cells(self) -> list[str]:
        if self.settlement_currency is None:
            return ["", "", ""]
        return [self.settlement_currency, str(self.settlement_gross), str(self.exchange_rate)]


def chargeback_fee(currency: str) -> int:
    return CHARGEBACK_FEE_MAJOR_CENTS * 10 ** EXPONENTS[currency] // 100


def _day_bounds(day: date) -> tuple[int, int]:
    start = int(datetime.combine(day, time(), UTC).timestamp())
    return start, start + int(timedelta(days=1).total_seconds())


def processed(books: Acquirer, day: date) -> Iterator[ReportRow]:
    """What the acquirer moved on ``day``, from its own books."""
    start, end = _day_bounds(day)
    captured_at: dict[str, int] = {}
    for key, op in books.operations.items():
        current = op.current or op.response
        if op.kind == "capture" and current.get("status") == "captured":
            captured_at[op.authorization_id] = int(current["created"])
        elif op.kind == "refund" and current.get("status") == "refunded" and \
                start <= int(current["created"]) < end:
            auth = books.authorizations[op.authorization_id]
            yield ReportRow("refund", str(current["id"]), key, auth.currency,
                            -int(current["amount"]), 0, "refunded", int(current["created"]))
    for auth in books.authorizations.values():
        if auth.status != "captured" or auth.amount_captured <= 0:
            continue
        at = captured_at.get(auth.id, auth.created)  # automatic capture: at authorisation
        if start <= at < end:
            fee = PRICING.fee_for(Money(auth.amount_captured, auth.currency)).minor
            yield ReportRow("charge", auth.id, auth.idempotency_key, auth.currency,
                            auth.amount_captured, fee, "captured", at)
    for dispute in books.disputes.values():
        # a won dispute was charged back first (only a chargeback is won or lost)
        if dispute.status in CHARGEBACK | {"won"} and start <= dispute.created < end:
            yield ReportRow("chargeback", dispute.id, dispute.authorization_key,
                            dispute.currency, -dispute.amount, chargeback_fee(dispute.currency),
                            "charged_back", dispute.created)
        if dispute.status == "won" and dispute.decided is not None and \
                start <= dispute.decided < end:
            yield ReportRow("chargeback_reversal", dispute.id, dispute.authorization_key,
                            dispute.currency, dispute.amount,
                            -chargeback_fee(dispute.currency), "reversed", dispute.decided)


def _fee(row_type: str, gross: Money) -> int:
    if row_type == "charge":
        return PRICING.fee_for(gross).minor
    if row_type == "chargeback":
        return chargeback_fee(gross.currency)
    if row_type == "chargeback_reversal":  # the chargeback fee comes back with the win
        return -chargeback_fee(gross.currency)
    return 0


def _converted(row: ReportRow, settlement_currency: str, rate: Decimal) -> ReportRow:
    settled = convert(Money(row.gross, row.currency), rate, settlement_currency)
    return replace(row, fee=_fee(row.type, Money(abs(settled.minor), settlement_currency)),
                   settlement_currency=settlement_currency, settlement_gross=settled.minor,
                   exchange_rate=rate)


def settled_in(rows: Iterator[ReportRow] | list[ReportRow], settlement_currency: str | None,
               rates: dict[str, str] | None) -> Iterator[ReportRow]:
    """The rows as an account paying out in ``settlement_currency`` reports them: each
    movement in a currency it has a rate for converted at that rate, the others as they
    were."""
    parsed = {c: parse_rate(r) for c, r in (rates or {}).items()}
    for row in rows:
        rate = parsed.get(row.currency)
        if settlement_currency is None or rate is None or row.currency == settlement_currency:
            yield row
        else:
            yield _converted(row, settlement_currency, rate)


def _other_currency(row: ReportRow) -> str:
    """A currency the row is not in (nor settled in), of the same minor unit, so a
    converted row stays a conversion the parser accepts."""
    taken = {row.currency, row.settlement_currency}
    if row.settlement_currency is None:
        return "eur" if row.currency != "eur" else "gbp"
    # the familiar ones first, then any of the same minor unit (jpy settled in krw leaves
    # no zero-decimal one among the first)
    preferred = ("eur", "gbp", "chf", "jpy", "krw", "kwd", "bhd", "omr")
    return next(c for c in (*preferred, *sorted(EXPONENTS))
                if EXPONENTS[c] == EXPONENTS[row.currency] and c not in taken)


def with_discrepancies(rows: list[ReportRow], inject: dict[str, int], *, seed: int
                       ) -> tuple[list[ReportRow], list[dict[str, str]]]:
    """``rows`` with ``inject[kind]`` discrepancies of each kind, on distinct charge rows;
    returns the rows and the manifest (kind, psp_reference) of what was injected."""
    unknown = sorted(set(inject) - set(INJECTABLE))
    if unknown:
        raise ValueError(f"cannot inject {unknown[0]}: one of {', '.join(INJECTABLE)}")
    rng = random.Random(seed)
    charges = [i for i, r in enumerate(rows) if r.type == "charge"]
    wanted = sum(n for kind, n in inject.items() if kind != "missing_in_kassa")
    if wanted > len(charges):
        raise ValueError(f"{wanted} discrepancies asked for, {len(charges)} charge rows")
    victims = iter(rng.sample(charges, wanted))
    out: list[ReportRow | None] = list(rows)
    manifest: list[dict[str, str]] = []
    for kind in INJECTABLE:
        for n in range(inject.get(kind, 0)):
            if kind == "missing_in_kassa":
                base = rows[charges[0]] if charges else None
                currency = base.currency if base else "usd"
                made = ReportRow("charge", f"sim_injected_{seed}_{n}", f"unknown_{seed}_{n}",
                                 currency, 4242, PRICING.fee_for(Money(4242, currency)).minor,
                                 "captured", base.created if base else 0)
                out.append(made)
                manifest.append({"kind": kind, "psp_reference": made.psp_reference})
                continue
            i = next(victims)
            row = rows[i]
            manifest.append({"kind": kind, "psp_reference": row.psp_reference})
            if kind == "missing_at_psp":
                out[i] = None
            elif kind == "amount_mismatch":
                out[i] = replace(row, gross=row.gross + 100)
                if row.exchange_rate is not None and row.settlement_currency is not None:
                    out[i] = _converted(replace(row, gross=row.gross + 100),
                                        row.settlement_currency, row.exchange_rate)
            elif kind == "fee_mismatch":
                out[i] = replace(row, fee=row.fee + 7)
            elif kind == "currency_mismatch":
                out[i] = replace(row, currency=_other_currency(row))
            elif kind == "status_mismatch":
                out[i] = replace(row, status="failed")
    return [r for r in out if r is not None], manifest


def render_csv(rows: list[ReportRow], *, conversions: bool = False) -> str:
    """The CSV; with ``conversions`` (an account that settles in one currency) the
    conversion columns too."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS + CONVERSION_COLUMNS if conversions else COLUMNS)
    for row in sorted(rows, key=lambda r: (r.created, r.psp_reference)):
        writer.writerow(row.cells() + row.conversion_cells() if conversions else row.cells())
    return buffer.getvalue()
