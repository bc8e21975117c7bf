"""Posting rules: every posting balances per currency and layer; Posting refuses otherwise."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kassa.domain import ledger
from kassa.domain.fees import FeeSchedule
from kassa.domain.ledger import (
    REVENUE_FEES,
    Entry,
    Layer,
    Posting,
    TxKind,
    UnbalancedTransaction,
)
from kassa.domain.money import MAX_AMOUNT, Money

M = "acct_1"
PSP = "simulator"
RECEIVABLE = ledger.psp_receivable(PSP)
PENDING = ledger.merchant_pending(M)
AVAILABLE = ledger.merchant_available(M)


def sums(posting: Posting) -> dict[tuple[str, Layer], int]:
    out: dict[tuple[str, Layer], int] = defaultdict(int)
    for e in posting.entries:
        out[(e.amount.currency, e.layer)] += e.amount.minor
    return dict(out)


def by_account(posting: Posting) -> dict[tuple[str, Layer], int]:
    out: dict[tuple[str, Layer], int] = defaultdict(int)
    for e in posting.entries:
        out[(e.account, e.layer)] += e.amount.minor
    return dict(out)


def assert_balanced(posting: Posting) -> None:
    assert len(posting.entries) >= 2
    assert all(v == 0 for v in sums(posting).values()), sums(posting)
    assert all(e.amount.minor != 0 for e in posting.entries)  # the DB refuses zero entries


def test_account_names():
    assert RECEIVABLE == "psp:simulator:receivable"
    assert PENDING == "merchant:acct_1:pending"
    assert AVAILABLE == "merchant:acct_1:available"


# --------------------------------------------------------------------- Posting itself


def test_posting_refuses_fewer_than_two_entries():
    with pytest.raises(UnbalancedTransaction, match="at least two"):
        Posting(TxKind.REFUND, ())
    with pytest.raises(UnbalancedTransaction, match="at least two"):
        Posting(TxKind.REFUND, (Entry("a", Money(0, "usd")),))


def test_posting_refuses_unbalanced_entries():
    with pytest.raises(UnbalancedTransaction):
        Posting(TxKind.REFUND, (Entry("a", Money(100, "usd")), Entry("b", Money(-99, "usd"))))


def test_posting_balances_per_currency_not_in_total():
    with pytest.raises(UnbalancedTransaction):
        Posting(TxKind.REFUND, (Entry("a", Money(100, "usd")), Entry("b", Money(-100, "eur"))))


def test_posting_balances_per_layer_not_in_total():
    with pytest.raises(UnbalancedTransaction):
        Posting(TxKind.HOLD, (Entry("a", Money(100, "usd"), Layer.PENDING),
                              Entry("b", Money(-100, "usd"), Layer.POSTED)))


def test_posting_with_several_balanced_currencies_and_layers():
    p = Posting(TxKind.CAPTURE, (
        Entry("a", Money(100, "usd")), Entry("b", Money(-100, "usd")),
        Entry("a", Money(7, "jpy")), Entry("b", Money(-7, "jpy")),
        Entry("c", Money(5, "usd"), Layer.PENDING), Entry("d", Money(-5, "usd"), Layer.PENDING),
    ))
    assert_balanced(p)


def test_unbalanced_transaction_is_a_value_error():
    assert issubclass(UnbalancedTransaction, ValueError)


# --------------------------------------------------------------------- posting rules


def test_authorization_hold_and_release_are_pending_layer_mirrors():
    amount = Money(1000, "usd")
    hold = ledger.authorization_hold(merchant_id=M, psp=PSP, amount=amount)
    release = ledger.authorization_release(merchant_id=M, psp=PSP, held=amount)
    assert (hold.kind, release.kind) == (TxKind.HOLD, TxKind.HOLD_RELEASE)
    assert_balanced(hold)
    assert_balanced(release)
    assert by_account(hold) == {(RECEIVABLE, Layer.PENDING): 1000, (PENDING, Layer.PENDING): -1000}
    assert {k: -v for k, v in by_account(release).items()} == by_account(hold)


def test_automatic_capture():
    p = ledger.capture(merchant_id=M, psp=PSP, gross=Money(2000, "usd"), fee=Money(88, "usd"))
    assert p.kind is TxKind.CAPTURE
    assert_balanced(p)
    assert by_account(p) == {(RECEIVABLE, Layer.POSTED): 2000, (PENDING, Layer.POSTED): -1912,
                             (REVENUE_FEES, Layer.POSTED): -88}


def test_capture_with_held_releases_the_whole_hold():
    # partial capture of 600 from a 1000 hold: 600 is posted, all 1000 is released
    p = ledger.capture(merchant_id=M, psp=PSP, gross=Money(600, "usd"), fee=Money(47, "usd"),
                       held=Money(1000, "usd"))
    assert_balanced(p)
    assert by_account(p) == {
        (RECEIVABLE, Layer.POSTED): 600, (PENDING, Layer.POSTED): -553,
        (REVENUE_FEES, Layer.POSTED): -47,
        (RECEIVABLE, Layer.PENDING): -1000, (PENDING, Layer.PENDING): 1000,
    }
    hold = ledger.authorization_hold(merchant_id=M, psp=PSP, amount=Money(1000, "usd"))
    pending_after = defaultdict(int)
    for e in (*hold.entries, *p.entries):
        if e.layer is Layer.PENDING:
            pending_after[e.account] += e.amount.minor
    assert set(pending_after.values()) == {0}  # nothing left on hold


def test_a_capture_reversal_mirrors_the_settled_entries_only():
    """The scheme rejected the capture: what it credited the merchant and fees is taken
    back and the receivable credited; its hold release stays (a hold valid again is a new
    hold, so each hold resolves once)."""
    capture = ledger.capture(merchant_id=M, psp=PSP, gross=Money(600, "usd"),
                             fee=Money(47, "usd"), held=Money(1000, "usd"))
    reversal = ledger.capture_reversal(capture.entries)
    assert reversal.kind is TxKind.CAPTURE_REVERSAL
    assert_balanced(reversal)
    assert by_account(reversal) == {(RECEIVABLE, Layer.POSTED): -600,
                                    (PENDING, Layer.POSTED): 553,
                                    (REVENUE_FEES, Layer.POSTED): 47}
    settled: defaultdict[tuple[str, Layer], int] = defaultdict(int)
    for e in (*capture.entries, *reversal.entries):
        if e.layer is Layer.POSTED:
            settled[(e.account, e.layer)] += e.amount.minor
    assert set(settled.values()) == {0}  # nothing captured is left on the books


@given(st.integers(1, MAX_AMOUNT), st.integers(0, 10_000))
def test_a_capture_and_its_reversal_conserve_money(gross: int, fee: int) -> None:
    fee = min(fee, gross)
    capture = ledger.capture(merchant_id=M, psp=PSP, gross=Money(gross, "eur"),
                             fee=Money(fee, "eur"))
    reversal = ledger.capture_reversal(capture.entries)
    total: defaultdict[str, int] = defaultdict(int)
    for e in (*capture.entries, *reversal.entries):
        total[e.account] += e.amount.minor
    assert set(total.values()) == {0}


def test_capture_drops_zero_entries():
    no_fee = ledger.capture(merchant_id=M, psp=PSP, gross=Money(1, "jpy"), fee=Money(0, "jpy"))
    assert_balanced(no_fee)
    assert REVENUE_FEES not in {e.account for e in no_fee.entries}
    all_fee = ledger.capture(merchant_id=M, psp=PSP, gross=Money(30, "usd"), fee=Money(30, "usd"))
    assert_balanced(all_fee)
    assert PENDING not in {e.account for e in all_fee.entries}


def test_refund_and_its_reversal():
    r = ledger.refund(merchant_id=M, psp=PSP, amount=Money(300, "kwd"))
    rr = ledger.refund_reversal(merchant_id=M, psp=PSP, amount=Money(300, "kwd"))
    assert_balanced(r)
    assert_balanced(rr)
    assert by_account(r) == {(AVAILABLE, Layer.POSTED): 300, (RECEIVABLE, Layer.POSTED): -300}
    assert {k: -v for k, v in by_account(rr).items()} == by_account(r)


def test_make_available():
    p = ledger.make_available(merchant_id=M, net=Money(912, "usd"))
    assert_balanced(p)
    assert by_account(p) == {(PENDING, Layer.POSTED): 912, (AVAILABLE, Layer.POSTED): -912}


amounts = st.integers(1, MAX_AMOUNT)
currencies = st.sampled_from(["usd", "jpy", "kwd", "eur", "bhd", "krw"])


@given(gross=amounts, extra_hold=st.integers(0, MAX_AMOUNT), currency=currencies,
       manual=st.booleans())
def test_capture_balances_for_any_amount(gross, extra_hold, currency, manual):
    fee = FeeSchedule().fee_for(Money(gross, currency))
    held = Money(min(MAX_AMOUNT, gross + extra_hold), currency) if manual else None
    p = ledger.capture(merchant_id=M, psp=PSP, gross=Money(gross, currency), fee=fee, held=held)
    assert_balanced(p)
    accounts = by_account(p)
    assert accounts[(RECEIVABLE, Layer.POSTED)] == gross
    assert accounts.get((REVENUE_FEES, Layer.POSTED), 0) == -fee.minor
    assert accounts.get((PENDING, Layer.POSTED), 0) == -(gross - fee.minor)
    if held is not None:
        assert accounts[(RECEIVABLE, Layer.PENDING)] == -held.minor


@given(amount=amounts, currency=currencies)
def test_every_other_rule_balances_for_any_amount(amount, currency):
    money = Money(amount, currency)
    for p in (ledger.authorization_hold(merchant_id=M, psp=PSP, amount=money),
              ledger.authorization_release(merchant_id=M, psp=PSP, held=money),
              ledger.refund(merchant_id=M, psp=PSP, amount=money),
              ledger.refund_reversal(merchant_id=M, psp=PSP, amount=money),
              ledger.make_available(merchant_id=M, net=money)):
        assert_balanced(p)
        assert {e.amount.currency for e in p.entries} == {currency}
