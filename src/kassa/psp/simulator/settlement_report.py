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
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta

from kassa.domain.fees import FeeSchedule
from kassa.domain.money import EXPONENTS, Money
from kassa.psp.simulator.books import Acquirer
from kassa.psp.simulator.books.records import CHARGEBACK

PRICING = FeeSchedule(percent_bps=150, fixed_major_cents=10)
CHARGEBACK_FEE_MAJOR_CENTS = 1500
COLUMNS = ("type", "psp_reference", "merchant_reference", "currency", "gross", "fee", "net",
           "status", "created")
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

    def cells(self) -> list[str]:
        return [self.type, self.psp_reference, self.merchant_reference, self.currency,
                str(self.gross), str(self.fee), str(self.gross - self.fee), self.status,
                str(self.created)]


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
            elif kind == "fee_mismatch":
                out[i] = replace(row, fee=row.fee + 7)
            elif kind == "currency_mismatch":
                out[i] = replace(row, currency="eur" if row.currency != "eur" else "gbp")
            elif kind == "status_mismatch":
                out[i] = replace(row, status="failed")
    return [r for r in out if r is not None], manifest


def render_csv(rows: list[ReportRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in sorted(rows, key=lambda r: (r.created, r.psp_reference)):
        writer.writerow(row.cells())
    return buffer.getvalue()
