"""The payout state machine, Stripe's payout failure codes, and the ledger postings, event
and balance transaction each payout transition makes.

A payout is created ``pending`` (kassa has not handed it to the bank yet), moves to
``in_transit`` once the bank has it, then ``paid``; it may instead end ``failed`` or, while
still pending, ``canceled``. Stripe documents that a payout may show ``paid`` and turn
``failed`` days later (the receiving bank returned it), so ``paid -> failed`` is legal.

Postings (ARCHITECTURE §2), for payout amount P of merchant M:

    created              Dr merchant:M:available P / Cr merchant:M:payouts_in_transit P
    in_transit -> paid   Dr merchant:M:payouts_in_transit P / Cr bank:cash P
    pending|in_transit -> failed, pending -> canceled
                         Dr merchant:M:payouts_in_transit P / Cr merchant:M:available P
    paid -> failed       Dr bank:cash P / Cr merchant:M:available P  (the bank returned it)

so in every end state the in-transit account of the payout is back to zero, and a payout that
did not reach the merchant leaves the available balance as it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from kassa.domain.errors import IllegalTransition, InvalidRequest
from kassa.domain.ledger import (
    BANK_CASH,
    Entry,
    Posting,
    TxKind,
    merchant_available,
    merchant_payouts_in_transit,
)
from kassa.domain.money import Money


class PayoutStatus(StrEnum):
    PENDING = "pending"  # created; not handed to the bank yet (the only cancelable state)
    IN_TRANSIT = "in_transit"  # the bank accepted it and is moving the money
    PAID = "paid"  # the bank reports it arrived (may still turn failed: a return)
    FAILED = "failed"  # refused or returned by the bank; the money is back in available
    CANCELED = "canceled"  # canceled while pending; the money is back in available


TRANSITIONS: dict[PayoutStatus, frozenset[PayoutStatus]] = {
    PayoutStatus.PENDING: frozenset({PayoutStatus.IN_TRANSIT, PayoutStatus.FAILED,
                                     PayoutStatus.CANCELED}),
    PayoutStatus.IN_TRANSIT: frozenset({PayoutStatus.PAID, PayoutStatus.FAILED}),
    PayoutStatus.PAID: frozenset({PayoutStatus.FAILED}),
    PayoutStatus.FAILED: frozenset(),
    PayoutStatus.CANCELED: frozenset(),
}

TERMINAL = frozenset(s for s, nexts in TRANSITIONS.items() if not nexts)


class FailureCode(StrEnum):
    """Stripe's ``payout.failure_code`` values (https://docs.stripe.com/api/payouts/failures)."""

    ACCOUNT_CLOSED = "account_closed"
    ACCOUNT_FROZEN = "account_frozen"
    BANK_ACCOUNT_RESTRICTED = "bank_account_restricted"
    BANK_OWNERSHIP_CHANGED = "bank_ownership_changed"
    COULD_NOT_PROCESS = "could_not_process"
    DEBIT_NOT_AUTHORIZED = "debit_not_authorized"
    DECLINED = "declined"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    INVALID_ACCOUNT_NUMBER = "invalid_account_number"
    INCORRECT_ACCOUNT_HOLDER_NAME = "incorrect_account_holder_name"
    INCORRECT_ACCOUNT_HOLDER_ADDRESS = "incorrect_account_holder_address"
    INCORRECT_ACCOUNT_HOLDER_TAX_ID = "incorrect_account_holder_tax_id"
    INVALID_CURRENCY = "invalid_currency"
    NO_ACCOUNT = "no_account"
    UNSUPPORTED_CARD = "unsupported_card"


FAILURE_MESSAGES: dict[FailureCode, str] = {
    FailureCode.ACCOUNT_CLOSED: "The bank account has been closed.",
    FailureCode.ACCOUNT_FROZEN: "The bank account has been frozen.",
    FailureCode.BANK_ACCOUNT_RESTRICTED:
        "The bank account has restrictions on either the type or number of payouts allowed.",
    FailureCode.BANK_OWNERSHIP_CHANGED:
        "The destination bank account is no longer valid because its branch has changed "
        "ownership.",
    FailureCode.COULD_NOT_PROCESS: "The bank could not process this payout.",
    FailureCode.DEBIT_NOT_AUTHORIZED: "Debit transactions are not approved on the bank account.",
    FailureCode.DECLINED: "The bank has declined this transfer.",
    FailureCode.INSUFFICIENT_FUNDS: "The balance has insufficient funds to cover the payout.",
    FailureCode.INVALID_ACCOUNT_NUMBER:
        "The routing number seems correct, but the account number is invalid.",
    FailureCode.INCORRECT_ACCOUNT_HOLDER_NAME:
        "The bank notified us that the bank account holder name on file is incorrect.",
    FailureCode.INCORRECT_ACCOUNT_HOLDER_ADDRESS:
        "The bank notified us that the bank account holder address on file is incorrect.",
    FailureCode.INCORRECT_ACCOUNT_HOLDER_TAX_ID:
        "The bank notified us that the bank account holder tax ID on file is incorrect.",
    FailureCode.INVALID_CURRENCY:
        "The bank was unable to process this payout because of its currency.",
    FailureCode.NO_ACCOUNT: "The bank account details on file are probably incorrect.",
    FailureCode.UNSUPPORTED_CARD: "The bank no longer supports payouts to this card.",
}


class IllegalPayoutTransition(IllegalTransition):
    code = "payout_unexpected_state"

    def __init__(self, src: str, dst: str, *, action: str | None = None):
        super().__init__(src, dst, action=action, obj="payout")


class InsufficientFunds(InvalidRequest):
    """The payout is larger than the merchant's available balance in its currency."""

    code = "balance_insufficient"


def check_funds(*, amount: Money, available: Money) -> None:
    """A payout takes only what is available (read under the lock the payout holds): so
    payouts never exceed what became available, though refunds and disputes may still take
    the balance below zero afterwards."""
    if amount.currency != available.currency:
        raise ValueError("the balance checked must be in the payout's currency")
    if amount.minor > available.minor:
        raise InsufficientFunds(
            f"You have insufficient funds in your {available.currency} balance for this "
            f"payout: {available.minor} available, {amount.minor} requested.", param="amount")


def failure_code(raw: str) -> FailureCode:
    """A failure code from a bank or PSP answer; an unknown one is ``could_not_process``
    (Stripe's catch-all), so a new code from a bank never leaves a payout unrecorded."""
    try:
        return FailureCode(raw)
    except ValueError:
        return FailureCode.COULD_NOT_PROCESS


def check_transition(src: PayoutStatus, dst: PayoutStatus) -> None:
    if dst not in TRANSITIONS[src]:
        action = "cancel" if dst is PayoutStatus.CANCELED else None
        raise IllegalPayoutTransition(src.value, dst.value, action=action)


_ORDER = {PayoutStatus.PENDING: 0, PayoutStatus.IN_TRANSIT: 1, PayoutStatus.PAID: 2,
          PayoutStatus.FAILED: 3, PayoutStatus.CANCELED: 3}


def catch_up(current: PayoutStatus, reported: PayoutStatus) -> list[PayoutStatus]:
    """The moves that bring a payout from ``current`` to what its rail now ``reported``
    (a poll may skip states: pending -> paid is in_transit then paid), each legal in
    TRANSITIONS; empty when the report is not news (a stale or repeated answer), so
    applying every answer that arrives, in any order, moves a payout once per state."""
    if current in TERMINAL or reported is current or reported is PayoutStatus.PENDING:
        return []
    if reported is PayoutStatus.CANCELED:  # a rail cannot cancel; kassa cancels pending ones
        return []
    if _ORDER[reported] < _ORDER[current]:
        return []  # stale: the rail said in_transit after kassa saw it paid
    path: list[PayoutStatus] = []
    state = current
    if state is PayoutStatus.PENDING:
        path.append(PayoutStatus.IN_TRANSIT)
        state = PayoutStatus.IN_TRANSIT
    if reported is not state:
        path.append(reported)
    return path


# -- what each move writes -------------------------------------------------------------------

EVENT_TYPES: dict[PayoutStatus, str] = {
    PayoutStatus.IN_TRANSIT: "payout.updated",
    PayoutStatus.PAID: "payout.paid",
    PayoutStatus.FAILED: "payout.failed",
    PayoutStatus.CANCELED: "payout.canceled",
}
CREATED_EVENT = "payout.created"


@dataclass(frozen=True, slots=True)
class BalanceTransactionSpec:
    """The merchant-facing balance transaction a posting shows as (Stripe's shape)."""

    type: str
    reporting_category: str
    amount: Money  # signed, as the merchant's balance moves: a payout is negative


@dataclass(frozen=True, slots=True)
class PayoutMove:
    """One legal state change with everything that commits together with it."""

    src: PayoutStatus | None  # None: the creation
    dst: PayoutStatus
    posting: Posting | None  # None: a status change that moves no money (-> in_transit)
    event_type: str
    balance_transaction: BalanceTransactionSpec | None
    failure_code: FailureCode | None = None

    @property
    def failure_message(self) -> str | None:
        return FAILURE_MESSAGES[self.failure_code] if self.failure_code else None


def _check_amount(amount: Money) -> None:
    if amount.minor <= 0:
        raise InvalidRequest("A payout amount must be a positive integer.", param="amount")


def create(*, merchant_id: str, amount: Money) -> PayoutMove:
    """A new payout: the money leaves the available balance for the in-transit account."""
    _check_amount(amount)
    posting = Posting(TxKind.PAYOUT, (
        Entry(merchant_available(merchant_id), amount),
        Entry(merchant_payouts_in_transit(merchant_id), -amount),
    ))
    return PayoutMove(None, PayoutStatus.PENDING, posting, CREATED_EVENT,
                      BalanceTransactionSpec("payout", "payout", -amount))


def move(*, merchant_id: str, amount: Money, src: PayoutStatus, dst: PayoutStatus,
         failure: FailureCode | None = None) -> PayoutMove:
    """The move ``src -> dst`` of a payout of ``amount``; raises IllegalPayoutTransition
    for a move the table does not allow, and refuses a failure without its code."""
    _check_amount(amount)
    check_transition(src, dst)
    if (dst is PayoutStatus.FAILED) != (failure is not None):
        raise InvalidRequest("a failed payout needs a failure code, and only a failed one",
                             param="failure_code")
    available = merchant_available(merchant_id)
    in_transit = merchant_payouts_in_transit(merchant_id)
    posting: Posting | None
    spec: BalanceTransactionSpec | None = None
    if dst is PayoutStatus.IN_TRANSIT:
        posting = None
    elif dst is PayoutStatus.PAID:
        posting = Posting(TxKind.PAYOUT_PAID, (
            Entry(in_transit, amount), Entry(BANK_CASH, -amount)))
    elif dst is PayoutStatus.CANCELED:
        posting = Posting(TxKind.PAYOUT_CANCEL, (
            Entry(in_transit, amount), Entry(available, -amount)))
        spec = BalanceTransactionSpec("payout_cancel", "payout_reversal", amount)
    else:  # failed: from paid the bank returned the money it had paid out
        source = BANK_CASH if src is PayoutStatus.PAID else in_transit
        posting = Posting(TxKind.PAYOUT_FAILURE, (
            Entry(source, amount), Entry(available, -amount)))
        spec = BalanceTransactionSpec("payout_failure", "payout_reversal", amount)
    return PayoutMove(src, dst, posting, EVENT_TYPES[dst], spec, failure)


# -- the payout itself -----------------------------------------------------------------------

DAY_SECONDS = 86_400
ESTIMATED_TRANSIT_DAYS = 2  # until the rail says when, a standard payout's expected arrival


def estimated_arrival(created: int, days: int = ESTIMATED_TRANSIT_DAYS) -> int:
    """00:00 UTC of the day ``days`` after ``created`` (Stripe's ``arrival_date`` is a day)."""
    return (created // DAY_SECONDS + days) * DAY_SECONDS


@dataclass(frozen=True, slots=True)
class Payout:
    """A payout as kassa records it; change it only through :meth:`moved`."""

    id: str
    merchant_id: str
    amount: Money
    status: PayoutStatus
    created: int
    arrival_date: int  # unix time of 00:00 UTC of the (expected) arrival day
    automatic: bool = False  # made by the schedule (then ``period_key`` is set)
    description: str | None = None
    statement_descriptor: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    destination: str | None = None  # the bank account's id (ba_…)
    failure_code: FailureCode | None = None
    balance_transaction: str | None = None  # txn_… of the payout itself
    failure_balance_transaction: str | None = None  # txn_… of its reversal, once failed
    period_key: str | None = None  # automatic payouts: the schedule period (unique)
    trace_id: str | None = None  # the rail's reference, once it has the payout
    version: int = 0  # compare-and-swap in the database

    def moved(self, move: PayoutMove, *, arrival_date: int | None = None,
              trace_id: str | None = None,
              failure_balance_transaction: str | None = None) -> Payout:
        """This payout after ``move`` (which must start from its status)."""
        if move.src is not self.status:
            raise IllegalPayoutTransition(self.status.value, move.dst.value)
        return replace(
            self, status=move.dst, version=self.version + 1,
            failure_code=move.failure_code or self.failure_code,
            arrival_date=arrival_date if arrival_date is not None else self.arrival_date,
            trace_id=trace_id or self.trace_id,
            failure_balance_transaction=(failure_balance_transaction
                                         or self.failure_balance_transaction))

    def move_to(self, dst: PayoutStatus, *, failure: FailureCode | None = None) -> PayoutMove:
        """The move from this payout's status to ``dst`` (raises when illegal)."""
        return move(merchant_id=self.merchant_id, amount=self.amount, src=self.status,
                    dst=dst, failure=failure)

    @property
    def reconciliation_status(self) -> str:
        """Stripe's: manual payouts cannot be itemised; an automatic one is complete once
        paid (kassa knows what it contains when it makes it)."""
        if not self.automatic:
            return "not_applicable"
        return "completed" if self.status is PayoutStatus.PAID else "in_progress"
