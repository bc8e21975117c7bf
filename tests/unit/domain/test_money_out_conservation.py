"""Money in and money out together, at the level of postings: for random interleavings of
captures, availability moves, refunds and payouts (paid, failed, paid then returned,
canceled) across currencies, every currency balances, the merchant's payouts never take
more than became available, and the in-transit account holds exactly the open payouts."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from kassa.domain import ledger
from kassa.domain.money import Money
from kassa.domain.payouts import (
    TERMINAL,
    FailureCode,
    InsufficientFunds,
    PayoutStatus,
    check_funds,
    create,
    move,
)

M = "acct_1"
PSP = "simulator"
CURRENCIES = ("usd", "jpy", "kwd")


@dataclass
class OpenPayout:
    amount: Money
    status: PayoutStatus = PayoutStatus.PENDING


@dataclass
class Books:
    balances: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))

    def post(self, posting: ledger.Posting | None) -> None:
        if posting is None:
            return
        for e in posting.entries:
            self.balances[(e.account, e.amount.currency)] += e.amount.minor

    def balance(self, account: str, ccy: str) -> int:
        return self.balances[(account, ccy)]


class MoneyOut(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.books = Books()
        self.pending_net: dict[str, int] = defaultdict(int)  # captured, not yet available
        self.made_available: dict[str, int] = defaultdict(int)
        self.paid_out: dict[str, int] = defaultdict(int)  # payouts created, not reversed
        self.payouts: list[OpenPayout] = []

    def available(self, ccy: str) -> int:
        return -self.books.balance(ledger.merchant_available(M), ccy)  # a liability

    @rule(ccy=st.sampled_from(CURRENCIES), gross=st.integers(100, 100_000),
          fee_share=st.integers(0, 10))
    def capture(self, ccy, gross, fee_share):
        fee = gross * fee_share // 100
        self.books.post(ledger.capture(merchant_id=M, psp=PSP, gross=Money(gross, ccy),
                                       fee=Money(fee, ccy)))
        self.pending_net[ccy] += gross - fee

    @rule(ccy=st.sampled_from(CURRENCIES), share=st.integers(1, 100))
    def become_available(self, ccy, share):
        net = self.pending_net[ccy] * share // 100
        if net:
            self.books.post(ledger.make_available(merchant_id=M, net=Money(net, ccy)))
            self.pending_net[ccy] -= net
            self.made_available[ccy] += net

    @rule(ccy=st.sampled_from(CURRENCIES), amount=st.integers(1, 5_000))
    def refund(self, ccy, amount):  # may take available below zero: shown and carried
        self.books.post(ledger.refund(merchant_id=M, psp=PSP, amount=Money(amount, ccy)))

    @rule(ccy=st.sampled_from(CURRENCIES), amount=st.integers(1, 200_000))
    def request_payout(self, ccy, amount):
        money = Money(amount, ccy)
        try:
            check_funds(amount=money, available=Money(self.available(ccy), ccy))
        except InsufficientFunds:
            assert amount > self.available(ccy)
            return
        self.books.post(create(merchant_id=M, amount=money).posting)
        self.payouts.append(OpenPayout(money))
        self.paid_out[ccy] += amount

    @precondition(lambda self: any(p.status not in TERMINAL for p in self.payouts))
    @rule(data=st.data())
    def advance_payout(self, data):
        open_ = [p for p in self.payouts if p.status not in TERMINAL]
        payout = data.draw(st.sampled_from(open_))
        nexts = {PayoutStatus.PENDING: [PayoutStatus.IN_TRANSIT, PayoutStatus.FAILED,
                                        PayoutStatus.CANCELED],
                 PayoutStatus.IN_TRANSIT: [PayoutStatus.PAID, PayoutStatus.FAILED],
                 PayoutStatus.PAID: [PayoutStatus.FAILED]}[payout.status]
        dst = data.draw(st.sampled_from(nexts))
        failure = data.draw(st.sampled_from(list(FailureCode))) \
            if dst is PayoutStatus.FAILED else None
        self.books.post(move(merchant_id=M, amount=payout.amount, src=payout.status, dst=dst,
                             failure=failure).posting)
        if dst in TERMINAL:
            self.paid_out[payout.amount.currency] -= payout.amount.minor
        payout.status = dst

    @invariant()
    def each_currency_balances(self):
        totals: dict[str, int] = defaultdict(int)
        for (_, ccy), v in self.books.balances.items():
            totals[ccy] += v
        assert all(v == 0 for v in totals.values())

    @invariant()
    def payouts_never_exceed_what_became_available(self):
        for ccy in CURRENCIES:
            assert self.paid_out[ccy] <= self.made_available[ccy]

    @invariant()
    def in_transit_holds_the_open_payouts(self):
        for ccy in CURRENCIES:
            open_ = sum(p.amount.minor for p in self.payouts if p.amount.currency == ccy
                        and p.status in (PayoutStatus.PENDING, PayoutStatus.IN_TRANSIT))
            assert -self.books.balance(ledger.merchant_payouts_in_transit(M), ccy) == open_
            paid = sum(p.amount.minor for p in self.payouts if p.amount.currency == ccy
                       and p.status is PayoutStatus.PAID)
            assert -self.books.balance(ledger.BANK_CASH, ccy) == paid


TestMoneyOut = MoneyOut.TestCase
TestMoneyOut.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


def test_check_funds_refuses_more_than_available():
    with pytest.raises(InsufficientFunds) as info:
        check_funds(amount=Money(101, "usd"), available=Money(100, "usd"))
    assert info.value.code == "balance_insufficient" and info.value.param == "amount"
    check_funds(amount=Money(100, "usd"), available=Money(100, "usd"))
    with pytest.raises(ValueError):
        check_funds(amount=Money(1, "usd"), available=Money(100, "eur"))
