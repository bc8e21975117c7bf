"""The payout state machine and its postings: every illegal move is refused, every legal
sequence of moves balances per currency and leaves the in-transit account at zero when it
ends, and a payout that did not reach the merchant gives the available balance back."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kassa.domain import ledger
from kassa.domain.errors import IllegalTransition, InvalidRequest
from kassa.domain.money import EXPONENTS, MAX_AMOUNT, Money
from kassa.domain.payouts import (
    FAILURE_MESSAGES,
    TERMINAL,
    TRANSITIONS,
    FailureCode,
    IllegalPayoutTransition,
    PayoutMove,
    PayoutStatus,
    catch_up,
    check_transition,
    create,
    failure_code,
    move,
)

M = "acct_1"
AVAILABLE = ledger.merchant_available(M)
IN_TRANSIT = ledger.merchant_payouts_in_transit(M)
S = PayoutStatus


def balances(moves: list[PayoutMove]) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = defaultdict(int)
    for m in moves:
        if m.posting is not None:
            for e in m.posting.entries:
                out[(e.account, e.amount.currency)] += e.amount.minor
    return {k: v for k, v in out.items() if v}


def test_transition_table_is_stripes():
    assert TRANSITIONS[S.PENDING] == {S.IN_TRANSIT, S.FAILED, S.CANCELED}
    assert TRANSITIONS[S.IN_TRANSIT] == {S.PAID, S.FAILED}
    assert TRANSITIONS[S.PAID] == {S.FAILED}  # a paid payout may still be returned
    assert TERMINAL == {S.FAILED, S.CANCELED}


def test_failure_codes_are_stripes_list():
    assert {c.value for c in FailureCode} == {
        "account_closed", "account_frozen", "bank_account_restricted",
        "bank_ownership_changed", "could_not_process", "debit_not_authorized", "declined",
        "insufficient_funds", "invalid_account_number", "incorrect_account_holder_name",
        "incorrect_account_holder_address", "incorrect_account_holder_tax_id",
        "invalid_currency", "no_account", "unsupported_card"}
    assert set(FAILURE_MESSAGES) == set(FailureCode)
    assert failure_code("account_closed") is FailureCode.ACCOUNT_CLOSED
    assert failure_code("something_new") is FailureCode.COULD_NOT_PROCESS


def test_creation_moves_available_into_transit():
    m = create(merchant_id=M, amount=Money(5000, "usd"))
    assert m.src is None and m.dst is S.PENDING and m.event_type == "payout.created"
    assert m.posting is not None and m.posting.kind is ledger.TxKind.PAYOUT
    assert balances([m]) == {(AVAILABLE, "usd"): 5000, (IN_TRANSIT, "usd"): -5000}
    assert m.balance_transaction is not None
    assert (m.balance_transaction.type, m.balance_transaction.amount) == (
        "payout", Money(-5000, "usd"))


@pytest.mark.parametrize("minor", [0, -1])
def test_a_payout_is_positive(minor):
    with pytest.raises(InvalidRequest):
        create(merchant_id=M, amount=Money(minor, "usd"))


def test_paid_credits_bank_cash_and_shows_no_balance_transaction():
    amount = Money(700, "eur")
    moves = [create(merchant_id=M, amount=amount),
             move(merchant_id=M, amount=amount, src=S.PENDING, dst=S.IN_TRANSIT),
             move(merchant_id=M, amount=amount, src=S.IN_TRANSIT, dst=S.PAID)]
    assert moves[1].posting is None and moves[1].event_type == "payout.updated"
    assert moves[2].event_type == "payout.paid" and moves[2].balance_transaction is None
    assert balances(moves) == {(AVAILABLE, "eur"): 700, (ledger.BANK_CASH, "eur"): -700}


def test_returned_after_paid_gives_the_money_back_from_bank_cash():
    amount = Money(700, "eur")
    moves = [create(merchant_id=M, amount=amount),
             move(merchant_id=M, amount=amount, src=S.PENDING, dst=S.IN_TRANSIT),
             move(merchant_id=M, amount=amount, src=S.IN_TRANSIT, dst=S.PAID),
             move(merchant_id=M, amount=amount, src=S.PAID, dst=S.FAILED,
                  failure=FailureCode.ACCOUNT_CLOSED)]
    assert balances(moves) == {}
    last = moves[-1]
    assert last.event_type == "payout.failed" and last.failure_code == "account_closed"
    assert last.failure_message == "The bank account has been closed."
    assert last.balance_transaction is not None
    assert (last.balance_transaction.type, last.balance_transaction.reporting_category,
            last.balance_transaction.amount) == ("payout_failure", "payout_reversal",
                                                 Money(700, "eur"))


def test_cancel_only_while_pending():
    amount = Money(100, "usd")
    canceled = move(merchant_id=M, amount=amount, src=S.PENDING, dst=S.CANCELED)
    assert canceled.event_type == "payout.canceled"
    assert canceled.balance_transaction is not None
    assert canceled.balance_transaction.type == "payout_cancel"
    for src in (S.IN_TRANSIT, S.PAID, S.FAILED, S.CANCELED):
        with pytest.raises(IllegalPayoutTransition,
                           match=f"cannot cancel this payout because it has a status of {src}"):
            move(merchant_id=M, amount=amount, src=src, dst=S.CANCELED)


def test_failure_needs_its_code_and_only_failure_has_one():
    amount = Money(100, "usd")
    with pytest.raises(InvalidRequest):
        move(merchant_id=M, amount=amount, src=S.IN_TRANSIT, dst=S.FAILED)
    with pytest.raises(InvalidRequest):
        move(merchant_id=M, amount=amount, src=S.IN_TRANSIT, dst=S.PAID,
             failure=FailureCode.DECLINED)


@given(st.sampled_from(list(S)), st.sampled_from(list(S)))
def test_every_illegal_move_is_refused(src, dst):
    legal = dst in TRANSITIONS[src]
    try:
        check_transition(src, dst)
    except IllegalTransition as exc:
        assert not legal
        assert exc.code == "payout_unexpected_state" and (exc.src, exc.dst) == (src, dst)
    else:
        assert legal


amounts = st.integers(1, MAX_AMOUNT)
currencies = st.sampled_from(sorted(EXPONENTS))


@st.composite
def walks(draw):
    """A random walk through the table from creation, as far as it goes."""
    path = [S.PENDING]
    while TRANSITIONS[path[-1]] and draw(st.booleans()):
        path.append(draw(st.sampled_from(sorted(TRANSITIONS[path[-1]]))))
    return path


@given(st.lists(st.tuples(amounts, currencies, walks(), st.sampled_from(list(FailureCode))),
                min_size=1, max_size=6))
def test_every_sequence_of_moves_balances_per_currency(payouts):
    moves: list[PayoutMove] = []
    for minor, ccy, path, code in payouts:
        amount = Money(minor, ccy)
        mine = [create(merchant_id=M, amount=amount)]
        for src, dst in zip(path, path[1:], strict=False):
            mine.append(move(merchant_id=M, amount=amount, src=src, dst=dst,
                             failure=code if dst is S.FAILED else None))
        for m in mine:  # each posting balances on its own (Posting checks it) ...
            if m.posting is not None:
                sums: dict[str, int] = defaultdict(int)
                for e in m.posting.entries:
                    sums[e.amount.currency] += e.amount.minor
                assert set(sums.values()) == {0}
        # ... and what one payout leaves behind depends only on where it ended
        left = balances(mine)
        end = path[-1]
        if end is S.PAID:
            assert left == {(AVAILABLE, ccy): minor, (ledger.BANK_CASH, ccy): -minor}
        elif end in TERMINAL:
            assert left == {}
        else:
            assert left == {(AVAILABLE, ccy): minor, (IN_TRANSIT, ccy): -minor}
        moves += mine
    total: dict[str, int] = defaultdict(int)
    for (_, ccy), v in balances(moves).items():
        total[ccy] += v
    assert all(v == 0 for v in total.values())


@given(st.sampled_from(list(S)), st.sampled_from(list(S)))
def test_catch_up_is_a_legal_path_to_the_rails_report(current, reported):
    path = catch_up(current, reported)
    state = current
    for nxt in path:
        check_transition(state, nxt)  # raises if illegal
        state = nxt
    if path:
        assert state is reported
        assert catch_up(state, reported) == []  # the same answer again is no news
    else:  # no news: terminal, the same, or behind what kassa already knows
        assert (current in TERMINAL or reported in (current, S.PENDING, S.CANCELED)
                or (current, reported) in {(S.PAID, S.IN_TRANSIT)})


def test_catch_up_examples():
    assert catch_up(S.PENDING, S.PAID) == [S.IN_TRANSIT, S.PAID]
    assert catch_up(S.PENDING, S.FAILED) == [S.IN_TRANSIT, S.FAILED]
    assert catch_up(S.IN_TRANSIT, S.FAILED) == [S.FAILED]
    assert catch_up(S.PAID, S.FAILED) == [S.FAILED]  # returned
    assert catch_up(S.PAID, S.IN_TRANSIT) == []
