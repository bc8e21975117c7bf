"""Automatic payouts carry what they itemise but cannot pay: over random sequences of funds
becoming available, refunds and disputes (driving the balance negative), manual payouts,
failed payouts and periods (in USD and in HUF, whose payouts are multiples of 100), the sum
of the payouts plus what is still available is everything that became available, no balance
transaction is paid twice, and once activity stops every payable cent is paid out."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kassa.domain.currencies import payable
from kassa.domain.money import Money
from kassa.domain.payout_amounts import period_payout


@dataclass
class Item:
    net: int
    available_on: int
    payout: int | None = None


class Merchant:
    """The balance transactions of one merchant and currency, and its payouts."""

    def __init__(self, currency: str) -> None:
        self.currency = currency
        self.items: list[Item] = []
        self.available = 0
        self.carried = Money.zero(currency)
        self.became_available = 0  # charges minus refunds and disputes
        self.payouts: dict[int, int] = {}  # id -> amount, automatic and manual, not failed
        self.manual: set[int] = set()
        self.clock = 0
        self.ids = 0

    def book(self, net: int) -> None:
        self.items.append(Item(net, self.clock))
        self.available += net

    def money_in(self, net: int) -> None:
        self.became_available += net
        self.book(net)

    def manual_payout(self, amount: int) -> None:
        amount = payable(Money(min(amount, self.available), self.currency)).minor
        if amount <= 0:
            return
        self.ids += 1
        pid = self.ids
        self.payouts[pid] = amount
        self.manual.add(pid)
        self.book(-amount)  # its debit is a balance transaction like any other

    def fail(self, pid: int) -> None:
        amount = self.payouts.pop(pid)
        self.book(amount)  # the payout_failure balance transaction returns it

    def period(self, cutoff: int) -> None:
        unpaid = [i for i in self.items if i.payout is None and i.available_on <= cutoff]
        decision = period_payout(itemized=Money(sum(i.net for i in unpaid), self.currency),
                                 carried_in=self.carried,
                                 available=Money(self.available, self.currency))
        assert decision.carried.minor >= 0
        self.carried = decision.carried
        if not decision.itemise:
            assert decision.amount.minor == 0
            return
        self.ids += 1
        pid = self.ids
        for i in unpaid:
            i.payout = pid
        self.payouts[pid] = decision.amount.minor
        self.available -= decision.amount.minor

    def check(self) -> None:
        unpaid = sum(i.net for i in self.items if i.payout is None)
        assert self.available == self.carried.minor + unpaid
        assert sum(self.payouts.values()) + self.available == self.became_available


steps = st.lists(st.one_of(
    st.tuples(st.just("in"), st.integers(1, 50_000)),
    st.tuples(st.just("refund"), st.integers(1, 60_000)),
    st.tuples(st.just("manual"), st.integers(1, 50_000)),
    st.tuples(st.just("fail"), st.integers(0, 50)),
    st.tuples(st.just("period"), st.integers(0, 3)),
    st.tuples(st.just("tick"), st.integers(1, 3)),
), max_size=60)


@settings(max_examples=400, deadline=None)
@given(currency=st.sampled_from(["usd", "huf", "jpy"]), sequence=steps)
def test_every_available_cent_is_paid_by_exactly_one_payout(currency, sequence):
    m = Merchant(currency)
    for kind, n in sequence:
        if kind == "in":
            m.money_in(n)
        elif kind == "refund":  # refunds and disputes: may take the balance negative
            m.money_in(-n)
        elif kind == "manual":
            m.manual_payout(n)
        elif kind == "fail" and m.payouts:
            m.fail(sorted(m.payouts)[n % len(m.payouts)])
        elif kind == "period":
            m.period(m.clock - n)  # a cutoff before items booked since: they wait
        elif kind == "tick":
            m.clock += n
        m.check()
    m.clock += 10
    m.period(m.clock)
    m.period(m.clock)
    m.check()
    # nothing stranded: what remains is below the payout multiple, or a negative balance
    assert payable(Money(m.available, currency)).minor == 0


def test_a_refund_after_the_cutoff_is_carried_not_stranded():
    first = period_payout(itemized=Money(10_000, "usd"), carried_in=Money.zero("usd"),
                          available=Money(7_000, "usd"))
    assert (first.amount.minor, first.itemise, first.carried.minor) == (7_000, True, 3_000)
    # next period: the refund (-3,000) is itemised now, with 5,000 of new funds
    second = period_payout(itemized=Money(2_000, "usd"), carried_in=first.carried,
                           available=Money(5_000, "usd"))
    assert (second.amount.minor, second.carried.minor) == (5_000, 0)


def test_rounding_to_the_payout_multiple_is_carried():
    first = period_payout(itemized=Money(12_345, "huf"), carried_in=Money.zero("huf"),
                          available=Money(12_345, "huf"))
    assert (first.amount.minor, first.carried.minor) == (12_300, 45)
    nothing = period_payout(itemized=Money(10, "huf"), carried_in=first.carried,
                            available=Money(55, "huf"))
    assert (nothing.amount.minor, nothing.itemise, nothing.carried.minor) == (0, False, 45)
    paid = period_payout(itemized=Money(60, "huf"), carried_in=first.carried,
                         available=Money(105, "huf"))
    assert (paid.amount.minor, paid.carried.minor) == (100, 5)


def test_mixed_currencies_are_refused():
    with pytest.raises(ValueError):
        period_payout(itemized=Money(1, "usd"), carried_in=Money.zero("eur"),
                      available=Money(1, "usd"))
