"""What an automatic payout pays for one period, and what it carries into the next, so that
every cent that became available is paid by exactly one payout eventually.

A period's payout contains (itemises) the balance transactions that became available by the
period's start and no payout contains yet. It cannot always pay their sum: the available
balance may be lower (a refund, dispute or manual payout after the cutoff already took money
that is only itemised next period), and payouts are rounded down to the currency's payout
multiple (HUF, TWD …). The difference between what the payout itemises and what it pays is
*carried*: the next period pays it on top of its own items. Keeping the carry makes this
hold after every period, which is what proves nothing is stranded or paid twice:

    available balance = carried + Σ net of available balance transactions no payout contains

(manual payouts' debits and failed payouts' returns are balance transactions like any other;
an automatic payout's own debit is not: it is what pays the others out).
"""

from __future__ import annotations

from dataclasses import dataclass

from kassa.domain.currencies import payable
from kassa.domain.money import Money


@dataclass(frozen=True, slots=True)
class PeriodPayout:
    amount: Money  # zero: no payout this period
    itemise: bool  # the period's balance transactions go into this payout
    carried: Money  # carried into the next period (never negative)


def period_payout(*, itemized: Money, carried_in: Money, available: Money) -> PeriodPayout:
    """The payout for a period whose unpaid balance transactions sum to ``itemized``, after
    earlier periods carried ``carried_in``, with ``available`` in the merchant's balance.

    Nothing to pay (the sum or the balance is not positive, or below the payout multiple):
    no payout, the items stay unpaid for the next period and the carry is kept as it was.
    Otherwise the payout contains the items and pays as much of ``itemized + carried_in``
    as the balance and the payout multiple allow; the rest is carried."""
    currency = available.currency
    if {itemized.currency, carried_in.currency} != {currency}:
        raise ValueError("a period's payout is in one currency")
    if carried_in.minor < 0:
        raise ValueError("a carried amount is never negative")
    due = itemized.minor + carried_in.minor
    amount = payable(Money(min(due, available.minor), currency))
    if amount.minor <= 0:
        return PeriodPayout(Money.zero(currency), itemise=False, carried=carried_in)
    return PeriodPayout(amount, itemise=True, carried=Money(due - amount.minor, currency))
