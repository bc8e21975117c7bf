"""`kassa ledger verify`: check every ledger invariant against the database."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from kassa.db import fx as fx_db
from kassa.domain import fx
from kassa.domain.money import Money
from kassa.ledger import invariants


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify(conn: asyncpg.Connection | asyncpg.Pool) -> Report:
    report = Report()
    for row in await invariants.unbalanced_transactions(conn):
        report.problems.append(
            f"transaction {row['transaction_id']} is unbalanced: {row['currency']} "
            f"{row['layer']} sums to {row['total']}")
    for row in await invariants.transactions_with_too_few_entries(conn):
        report.problems.append(f"transaction {row['id']} has {row['n']} entries (< 2)")
    after = 0
    while rows := await fx_db.conversions(conn, after=after):
        for row in rows:
            why = ("it records a rate but has no trading entries" if row["legs"] is None
                   else fx.trading_mismatch(row["legs"], row["exchange_rate"]))
            if why is not None:
                report.problems.append(
                    f"transaction {row['id']} ({row['kind']}, {row['layer']}): its trading "
                    f"entries disagree with its exchange rate: {why}")
        after = rows[-1]["id"]
    for row in await fx_db.untraded_trading_entries(conn):
        report.problems.append(
            f"transaction {row['id']} ({row['kind']}) has fx trading entries but no "
            "exchange rate")
    for row in await invariants.trial_balance(conn):
        if row["total"] != 0:
            report.problems.append(
                f"trial balance: {row['currency']} {row['layer']} sums to {row['total']}")
    for row in await invariants.payment_ledger_mismatches(conn):
        report.problems.append(
            f"payment {row['id']}: amount_received={row['amount_received']} but ledger "
            f"captured {row['captured']}")
    for row in await invariants.refund_ledger_mismatches(conn):
        report.problems.append(
            f"payment {row['id']}: succeeded refunds={row['refunded']} but ledger refunded "
            f"{row['ledger_refunded']}")
    for row in await invariants.merchant_balance_mismatches(conn):
        report.problems.append(
            f"merchant {row['merchant_id']} {row['currency']}: balance transactions net "
            f"{row['bt_net']} but ledger liabilities {row['ledger']}")
    for row in await invariants.unresolved_or_double_holds(conn):
        report.problems.append(f"hold {row['hold_ref']}: {row['problem']}")
    for row in await invariants.dispute_ledger_mismatches(conn):
        report.problems.append(
            f"dispute {row['id']} ({row['status']}): ledger withdrew {row['withdrawn']} and "
            f"reinstated {row['reinstated']}, expected {row['expected_withdrawn']} and "
            f"{row['expected_reinstated']}")
    last = ""
    while disputes := await invariants.converted_disputes(conn, after=last):
        for row in disputes:
            problem = _converted_dispute(row)
            if problem is not None:
                report.problems.append(f"dispute {row['id']} ({row['status']}): {problem}")
        last = disputes[-1]["id"]
    last = ""
    while refunded := await invariants.converted_refunds(conn, after=last):
        for row in refunded:
            expected = fx.convert(Money(row["presented"], row["currency"]),
                                  row["exchange_rate"], row["settlement_currency"]).minor
            if row["taken"] != expected:
                report.problems.append(
                    f"payment {row['id']}: its refunds took {row['taken']} "
                    f"{row['settlement_currency']} from the merchant, expected {expected} "
                    f"({row['presented']} {row['currency']} at {row['exchange_rate']})")
        last = refunded[-1]["id"]
    for row in await invariants.payout_ledger_mismatches(conn):
        report.problems.append(
            f"merchant {row['merchant_id']} {row['currency']}: open payouts {row['open']} but "
            f"payouts in transit {row['ledger']}")
    for row in await invariants.settlement_ledger_mismatches(conn):
        report.problems.append(
            f"settlement {row['source']}: the run posted rows of gross {row['items']}"
            f" (paid {row['items_received']}) but the ledger settled {row['ledger']}"
            f" (paid {row['ledger_received']})")
    for row in await invariants.settlement_fx_beyond_rounding(conn):
        report.problems.append(
            f"settlement {row['source']}: FX gain/loss {row['gain_loss']} {row['currency']}"
            f" for {row['n']} converted row(s), more than the PSP's rounding"
            f" ({invariants.SETTLED_ROUNDING_PER_ROW} per row)")
    for row in await invariants.objects_settled_twice(conn):
        report.problems.append(
            f"{row['category']} {row['matched']} settled {row['n']} times: "
            f"{', '.join(row['items'])}")
    for row in await invariants.checkpoint_mismatches(conn):
        report.problems.append(
            f"checkpoint {row['account']} {row['currency']} {row['layer']} at entry "
            f"{row['position']}: {row['balance']} but the journal sums to {row['journal']}")
    for row in await invariants.checkpoint_run_mismatches(conn):
        report.problems.append(
            f"checkpoint run at entry {row['position']}: {row['entries']} entries and "
            f"{row['accounts']} accounts written, the journal has {row['journal_entries']} and "
            f"{row['journal_accounts']}; as_of {row['as_of']} (latest posting "
            f"{row['latest']}), earliest {row['earliest_posted']} (journal {row['earliest']})"
            + ("" if row["chained"] else "; it extends no run"))
    report.checked = await invariants.ledger_counts(conn)
    return report


TAKEN = ("needs_response", "under_review", "won", "lost")


def _converted_dispute(row: asyncpg.Record) -> str | None:
    """A converted payment's dispute must take (and, won, give back exactly) its share of
    the converted capture (domain/fx.dispute_share) plus the fee converted at the payment's
    rate, in its settlement currency. A withdrawal posted before that rule (``legacy``:
    before migration payoutfix_dispute_share_cutover) converted the withdrawn amount alone
    (up to a minor unit more): it passes, its reversal must match; a later one must follow
    the rule, so a regression to the old amount is reported."""
    if row["amount_withdrawn"] is None:
        expected, allowed = 0, {0}
    else:
        rate, settlement = row["exchange_rate"], row["settlement_currency"]
        conversion = fx.Conversion(row["currency"], settlement, rate, "")

        def settle(minor: int) -> int:
            return conversion.settle(Money(minor, row["currency"])).minor
        fee = settle(row["fee"])
        withdrawn = Money(row["amount_withdrawn"], row["currency"])
        try:
            share = fx.dispute_share(conversion, received=Money(row["amount_received"],
                                                                row["currency"]),
                                     withdrawn=withdrawn).minor
        except ValueError as exc:
            return str(exc)
        expected = share + fee  # what the current rule takes
        allowed = {expected}
        if row["legacy"]:
            allowed.add(settle(row["amount_withdrawn"]) + fee)
    if row["status"] in TAKEN:
        if row["withdrawn"] in allowed and (
                row["reinstated"] == (row["withdrawn"] if row["status"] == "won" else 0)):
            return None
        return (f"ledger withdrew {row['withdrawn']} and reinstated {row['reinstated']} "
                f"{row['settlement_currency']}, expected {expected} and "
                f"{expected if row['status'] == 'won' else 0} at {row['exchange_rate']}")
    if (row["withdrawn"], row["reinstated"]) == (0, 0):
        return None
    return (f"ledger withdrew {row['withdrawn']} and reinstated {row['reinstated']} "
            f"{row['settlement_currency']}, expected 0 and 0")
