"""Payout use cases: create a payout of the available balance, cancel one while pending,
read them; and the one function every payout state change goes through, which writes the
change, its ledger posting, its balance transaction and its event in one transaction.

Creating takes the merchant-and-currency payout lock (db/payouts.py) before it
reads the available balance, so two payouts racing for one balance cannot both have it;
payments never take that lock. Cancel and the payouts worker lock the payout's row, so a
cancel and the worker's hand-over to the bank cannot both win.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kassa.db import payouts as payouts_db
from kassa.domain import currencies
from kassa.domain.errors import AmountError, InvalidRequest, NotFound
from kassa.domain.lists import Bounds
from kassa.domain.money import MAX_AMOUNT, Money, UnknownCurrency, normalize_currency
from kassa.domain.payouts import (
    FailureCode,
    Payout,
    PayoutMove,
    PayoutStatus,
    check_funds,
    create,
    estimated_arrival,
)
from kassa.ledger import balances as ledger_balances
from kassa.ledger import journal
from kassa.representations.payouts import payout as render
from kassa.services.context import Kassa
from kassa.services.uow import IdempotencyHandle, UnitOfWork

MAX_STATEMENT_DESCRIPTOR = 22  # Stripe's limit for payout statement descriptors


def queue_money(kassa: Kassa, uow: UnitOfWork, p: Payout, move: PayoutMove, *,
                bt_id: str | None) -> None:
    """Queue a move's ledger posting and balance transaction (after the posting, which the
    balance transaction belongs to) and its event, for the unit of work's commit."""
    posting = journal.payout(p, move, bt_id=bt_id, now=kassa.clock())
    if posting is not None:
        uow.add(posting)
    uow.emit(merchant_id=p.merchant_id, type=move.event_type, obj=render(p))


def _money(amount: int, currency: str) -> Money:
    try:
        ccy = normalize_currency(currency)
    except UnknownCurrency:
        raise InvalidRequest(f"Invalid currency: {currency}.", param="currency") from None
    if not 1 <= amount <= MAX_AMOUNT:
        raise AmountError(f"amount must be from 1 to {MAX_AMOUNT}.", param="amount")
    money = Money(amount, ccy)
    currencies.check_payout_amount(money)
    return money


async def create_payout(kassa: Kassa, *, merchant_id: str, amount: int, currency: str,
                        description: str | None = None,
                        metadata: dict[str, str] | None = None,
                        statement_descriptor: str | None = None,
                        idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    """A manual payout of ``amount`` from the available balance to the merchant's default
    bank account in that currency; the payouts worker hands it to the bank."""
    money = _money(amount, currency)
    if statement_descriptor is not None and len(statement_descriptor) > MAX_STATEMENT_DESCRIPTOR:
        raise InvalidRequest(f"statement_descriptor has at most {MAX_STATEMENT_DESCRIPTOR} "
                             "characters.", param="statement_descriptor")
    async with UnitOfWork(kassa, idempotency) as uow:
        conn = await uow.connection()
        await payouts_db.lock_payout_balance(conn, merchant_id=merchant_id, currency=money.currency)
        destination = await payouts_db.default_destination(conn, merchant_id=merchant_id,
                                                           currency=money.currency)
        if destination is None:
            raise InvalidRequest(f"You have no bank account in {money.currency} to pay out "
                                 "to; add one first.", param="currency",
                                 code="no_external_account")
        check_funds(amount=money, available=await ledger_balances.available_balance(
            conn, merchant_id=merchant_id, currency=money.currency))
        now = kassa.clock()
        p = Payout(id=kassa.ids("payout"), merchant_id=merchant_id, amount=money,
                   status=PayoutStatus.PENDING, created=now, arrival_date=estimated_arrival(now),
                   description=description, statement_descriptor=statement_descriptor,
                   metadata=dict(metadata or {}), destination=destination[0],
                   balance_transaction=kassa.ids("balance_transaction"))
        await payouts_db.insert_payout(conn, p, next_check_in_s=0.0)
        queue_money(kassa, uow, p, create(merchant_id=merchant_id, amount=money),
                    bt_id=p.balance_transaction)
        obj = render(p)
        await uow.commit(response=obj, resource_id=p.id)
    return obj


Moves = list[tuple[PayoutStatus, FailureCode | None]]


async def record_moves(kassa: Kassa, *, merchant_id: str, payout_id: str,
                       decide: Callable[[Payout], Moves],
                       next_check_in_s: Callable[[Payout], float | None],
                       arrival_date: int | None = None, trace_id: str | None = None,
                       idempotency: IdempotencyHandle | None = None) -> Payout:
    """Apply the moves ``decide`` picks for the payout as it is under its row lock (so a
    cancel and the worker, or two workers, decide one after the other), each with its
    money and event, in one transaction; ``next_check_in_s(after)`` says when the payouts
    worker looks at it next (None: never). Illegal moves raise IllegalPayoutTransition
    and write nothing."""
    async with UnitOfWork(kassa, idempotency) as uow:
        conn = await uow.connection()
        p = await payouts_db.get_payout(conn, merchant_id=merchant_id, payout_id=payout_id,
                                        for_update=True)
        if p is None:
            raise NotFound(f"No such payout: '{payout_id}'", param="id")
        moves = decide(p)
        for dst, failure in moves:
            move = p.move_to(dst, failure=failure)
            bt_id = kassa.ids("balance_transaction") if move.balance_transaction else None
            p = p.moved(move, arrival_date=arrival_date, trace_id=trace_id,
                        failure_balance_transaction=bt_id)
            queue_money(kassa, uow, p, move, bt_id=bt_id)
        if moves:
            await payouts_db.update_payout(conn, p, next_check_in_s=next_check_in_s(p))
        await uow.commit(response=render(p) if idempotency is not None else None,
                         side_effects=bool(moves))
    return p


async def cancel_payout(kassa: Kassa, *, merchant_id: str, payout_id: str,
                        idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    """Cancel a payout the bank does not have yet (``pending``); the money returns to the
    available balance."""
    p = await record_moves(kassa, merchant_id=merchant_id, payout_id=payout_id,
                           decide=lambda _: [(PayoutStatus.CANCELED, None)],
                           next_check_in_s=lambda _: None, idempotency=idempotency)
    return render(p)


async def retrieve_payout(kassa: Kassa, *, merchant_id: str, payout_id: str
                          ) -> dict[str, Any]:
    p = await payouts_db.get_payout(kassa.pool, merchant_id=merchant_id, payout_id=payout_id)
    if p is None:
        raise NotFound(f"No such payout: '{payout_id}'", param="id")
    return render(p)


async def list_payouts(kassa: Kassa, *, merchant_id: str, limit: int,
                       starting_after: str | None, ending_before: str | None,
                       created: Bounds | None = None, arrival_date: Bounds | None = None,
                       status: str | None = None) -> tuple[list[dict[str, Any]], bool]:
    if status is not None and status not in {s.value for s in PayoutStatus}:
        raise InvalidRequest(f"Invalid status: must be one of "
                             f"{', '.join(s.value for s in PayoutStatus)}.", param="status")
    rows, more = await payouts_db.list_payouts(
        kassa.pool, merchant_id=merchant_id, limit=limit, starting_after=starting_after,
        ending_before=ending_before, created=created, arrival_date=arrival_date,
        status=status)
    return [render(p) for p in rows], more
