"""Dispute use cases: apply what the PSP reports, let the merchant answer (evidence) or
concede (close), and read disputes — each change with its ledger postings, balance
transactions and events in one transaction.

An answer that reaches the PSP (submitted evidence, a concession) runs in three steps, like
a payment saga (ARCHITECTURE §3, §4): claim the Idempotency-Key, call the PSP, record the
result with the key's stored answer. No transaction is held open across the call. Claiming
first means a reused key with other parameters, or a request racing its twin, is refused
before anything leaves kassa. If kassa dies after the claim, the key's lock goes stale and
a retry with the same key takes it over and repeats the PSP call (idempotent at the PSP);
if it dies after the call, the PSP's own webhook records the change as well.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Awaitable, Mapping
from decimal import Decimal
from typing import Any

import asyncpg

from kassa import representations
from kassa.db import disputes as disputes_db
from kassa.db import ops
from kassa.db import payments as payments_db
from kassa.domain import disputes, ledger
from kassa.domain import fx as fx_rules
from kassa.domain.disputes import Dispute, DisputeChange, DisputeStatus
from kassa.domain.errors import (
    AmountError,
    ConcurrentModification,
    IllegalTransition,
    InvalidRequest,
    NotFound,
)
from kassa.domain.lists import Bounds
from kassa.domain.money import Money
from kassa.domain.payments import Operation, PaymentStatus
from kassa.ledger import journal
from kassa.psp.base import PSPEvent, PSPRejected, PSPRetryable
from kassa.services import fx
from kassa.services.context import Kassa
from kassa.services.uow import IdempotencyHandle, UnitOfWork

CAS_RETRIES = 8

log = logging.getLogger(__name__)


class Deferred(Exception):
    """The event cannot be applied yet (what it builds on is not recorded); retry later."""


# ------------------------------------------------------------------------- rendering


def _bt_row(bt_id: str, d: Dispute, *, amount: int, fee: int, now: int, description: str,
            currency: str, exchange_rate: Decimal | None) -> dict[str, Any]:
    return {"id": bt_id, "merchant_id": d.merchant_id, "amount": amount, "fee": fee,
            "net": amount - fee, "currency": currency, "type": "adjustment",
            "source": d.id, "status": "available", "available_on": now, "created": now,
            "description": description, "exchange_rate": exchange_rate}


async def _render(kassa: Kassa, conn: asyncpg.Connection | asyncpg.Pool, d: Dispute, *,
                  fresh: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The dispute object; ``fresh`` balance transactions are not committed yet."""
    refundable = 0
    if d.status in (DisputeStatus.WARNING_NEEDS_RESPONSE, DisputeStatus.WARNING_UNDER_REVIEW):
        p = await payments_db.get_payment(conn, merchant_id=d.merchant_id,
                                          payment_id=d.payment_intent_id)
        refundable = 0 if p is None else p.amount_received - p.amount_refunded
    fresh = fresh or []
    known = {row["id"] for row in fresh}
    ids = [i for i in (d.withdrawal_balance_transaction, d.reinstatement_balance_transaction)
           if i is not None and i not in known]
    rows: list[Any] = []
    if ids:
        rows = list(await disputes_db.balance_transactions(conn, merchant_id=d.merchant_id,
                                                           ids=ids))
    return representations.dispute(d, now=kassa.clock(), refundable=refundable,
                                   balance_transactions=[representations.balance_transaction(r)
                                                         for r in [*rows, *fresh]])


# ------------------------------------------------------------------------- money


async def _post(kassa: Kassa, uow: UnitOfWork, conn: asyncpg.Connection, d: Dispute,
                change: DisputeChange) -> list[dict[str, Any]]:
    """Queue the ledger postings and balance transactions a change calls for; returns the
    new balance transactions (for the events). What a withdrawal takes is fixed first
    (``record_withdrawal``); a reversal returns exactly that. A converted payment's
    dispute takes the top slice of the converted capture (domain/fx.dispute_share: with
    the refunds, never more than the capture credited) and the fee converted at the
    payment's original rate, its trading entries at the current rate (the difference to fx
    gain/loss, domain/fx.py)."""
    now = kassa.clock()
    rows = []
    conversion = await payments_db.payment_conversion(conn, d.payment_intent_id)
    current = await fx.trading_rate(kassa, kassa.pool, conversion)
    rate = None if conversion is None else conversion.rate
    taken: Money | None = None  # what this change's withdrawal took (settlement currency)
    for withdraw in (True, False):
        if not (change.withdraw if withdraw else change.reinstate):
            continue
        withdrawn = _withdrawn(d)
        fee = d.fee if conversion is None else conversion.settle(d.fee)
        settled, gain_loss, trading = None, None, None
        if conversion is not None:
            if withdraw:
                taken = settled = await _converted_withdrawal(conn, d, conversion, withdrawn)
            else:  # a won dispute gives back exactly what its withdrawal took
                settled = taken if taken is not None else await _withdrawal_taken(
                    conn, d, conversion, withdrawn, fee)
            trading = current if current is not None else conversion.rate
            gain_loss = fx_rules.convert(withdrawn, trading, conversion.settlement) - settled
        line = settled or withdrawn
        bt_id = kassa.ids("balance_transaction")
        if withdraw:
            d.withdrawal_balance_transaction = bt_id
            note = d.withdrawal_note()
            row = _bt_row(bt_id, d, amount=-line.minor, fee=fee.minor, now=now,
                          description=f"Chargeback withdrawal for {d.charge}"
                          + (f" ({note})" if note else ""), currency=line.currency,
                          exchange_rate=rate)
            posting = ledger.dispute(merchant_id=d.merchant_id, psp=d.psp, amount=withdrawn,
                                     fee=fee, settled=settled, gain_loss=gain_loss)
        else:
            d.reinstatement_balance_transaction = bt_id
            row = _bt_row(bt_id, d, amount=line.minor, fee=-fee.minor, now=now,
                          description=f"Chargeback reversal for {d.charge}",
                          currency=line.currency, exchange_rate=rate)
            posting = ledger.dispute_reversal(merchant_id=d.merchant_id, psp=d.psp,
                                              amount=withdrawn, fee=fee, settled=settled,
                                              gain_loss=gain_loss)
        uow.add(journal.dispute(posting, merchant_id=d.merchant_id, dispute_id=d.id,
                                line=_bt_op(row), exchange_rate=trading))
        rows.append(row)
    return rows


async def _converted_withdrawal(conn: asyncpg.Connection, d: Dispute,
                                conversion: fx_rules.Conversion, withdrawn: Money) -> Money:
    """A converted payment's chargeback takes the top slice of the converted capture
    (domain/fx.dispute_share), so it and the refunds never take more than was credited."""
    p = await payments_db.get_payment_unscoped(conn, d.payment_intent_id)
    if p is None:
        raise LookupError(f"payment {d.payment_intent_id} of dispute {d.id} does not exist")
    return fx_rules.dispute_share(conversion, received=Money(p.amount_received, p.currency),
                                  withdrawn=withdrawn)


async def _withdrawal_taken(conn: asyncpg.Connection, d: Dispute,
                            conversion: fx_rules.Conversion, withdrawn: Money, fee: Money
                            ) -> Money:
    """What the posted withdrawal took, fee aside (a withdrawal posted before the top-slice
    rule may differ from it by a minor unit); the rule's amount if none is posted."""
    total = await disputes_db.withdrawal_taken(
        conn, dispute_id=d.id, merchant_account=ledger.merchant_available(d.merchant_id))
    if total is None:
        return await _converted_withdrawal(conn, d, conversion, withdrawn)
    return Money(total - fee.minor, conversion.settlement)


def _withdrawn(d: Dispute) -> Money:
    if d.amount_withdrawn is None:  # the database refuses this too (migration 0007)
        raise AssertionError(f"dispute {d.id}: its withdrawal was not fixed before posting")
    return d.amount_withdrawn


def _bt_op(row: dict[str, Any]) -> ops.InsertBalanceTransaction:
    return ops.InsertBalanceTransaction(
        id=row["id"], merchant_id=row["merchant_id"], amount=row["amount"], fee=row["fee"],
        currency=row["currency"], type=row["type"], source=row["source"],
        status=row["status"], available_on=row["available_on"], created=row["created"],
        description=row["description"], exchange_rate=row["exchange_rate"])


async def _record(kassa: Kassa, uow: UnitOfWork, conn: asyncpg.Connection, d: Dispute,
                  change: DisputeChange | None, *, new: bool) -> dict[str, Any]:
    """Write the dispute, its money and its events into ``uow``; returns the object."""
    if change is not None and change.withdraw:
        # read under a share lock in the posting's transaction: a refund committing
        # meanwhile is either counted here or waits for this chargeback to commit
        disputable = await disputes_db.lock_disputable(conn, payment_id=d.payment_intent_id)
        d.record_withdrawal(disputable)
        if d.withdrawal_bounded:
            log.warning("dispute %s of payment %s: %s", d.id, d.payment_intent_id,
                        d.withdrawal_note())
    fresh = await _post(kassa, uow, conn, d, change) if change is not None else []
    if new:
        await disputes_db.insert_dispute(conn, d)
    else:
        await disputes_db.update_dispute(conn, d)
    obj = await _render(kassa, conn, d, fresh=fresh)
    types = change.event_types if change is not None else ["charge.dispute.updated"]
    for type_ in types:
        uow.emit(merchant_id=d.merchant_id, type=type_, obj=obj)
    return obj


# ------------------------------------------------------------------------- from the PSP


async def apply_psp_event(kassa: Kassa, uow: UnitOfWork, event: PSPEvent
                          ) -> tuple[str, str | None]:
    """Apply a dispute snapshot from the PSP inside ``uow``; returns (inbox status, note).

    Creates the dispute the first time (in whatever status it has reached, so a
    ``closed`` that overtook its ``created`` still posts both movements), otherwise moves
    it forward. Money follows the status change, so a repeat moves nothing.
    """
    snapshot = event.dispute
    assert snapshot is not None
    conn = await uow.connection()
    d = await disputes_db.lock_dispute_by_psp(conn, psp=event.psp,
                                              psp_dispute_id=snapshot.psp_dispute_id)
    if d is not None:
        try:
            change = d.psp_status(snapshot.status, evidence_due_by=snapshot.evidence_due_by)
        except IllegalTransition as exc:
            return "ignored", f"stale: {exc.message}"
        if change is None:
            await disputes_db.update_dispute(conn, d)  # the evidence deadline may have moved
            return "ignored", f"no change: already {d.status.value}"
        await _record(kassa, uow, conn, d, change, new=False)
        return "applied", d.withdrawal_note() if change.withdraw else None
    attempt = await payments_db.get_attempt(conn, event.reference) if event.reference else None
    if attempt is None or attempt.operation is not Operation.AUTHORIZE \
            or attempt.psp != event.psp:
        return "failed", f"no authorisation attempt {event.reference!r} at {event.psp}"
    p = await payments_db.get_payment_unscoped(conn, attempt.payment_intent_id)
    assert p is not None
    if p.status is not PaymentStatus.SUCCEEDED:
        raise Deferred(f"payment {p.id} is {p.status.value}; its capture is not recorded yet")
    if p.psp_reference != event.psp_reference:
        return "failed", (f"payment {p.id} has PSP reference {p.psp_reference!r}, the "
                          f"dispute {event.psp_reference!r}")
    try:
        d, change = disputes.open_from_psp(
            dispute_id=kassa.ids("dp"), merchant_id=p.merchant_id, payment_intent_id=p.id,
            charge=attempt.id, amount_received=Money(p.amount_received, p.currency),
            psp=event.psp, psp_dispute_id=snapshot.psp_dispute_id, amount=snapshot.amount,
            reason=snapshot.reason, status=snapshot.status,
            evidence_due_by=snapshot.evidence_due_by, created=kassa.clock())
    except AmountError as exc:
        return "failed", exc.message
    await _record(kassa, uow, conn, d, change, new=True)
    return "applied", d.withdrawal_note() if change.withdraw else None


# ------------------------------------------------------------------------- merchant API


async def load(kassa: Kassa, *, merchant_id: str, dispute_id: str,
               conn: asyncpg.Connection | asyncpg.Pool | None = None) -> Dispute:
    d = await disputes_db.get_dispute(conn or kassa.pool, merchant_id=merchant_id,
                                      dispute_id=dispute_id)
    if d is None:
        raise NotFound(f"No such dispute: '{dispute_id}'", param="dispute")
    return d


async def retrieve(kassa: Kassa, *, merchant_id: str, dispute_id: str) -> dict[str, Any]:
    d = await load(kassa, merchant_id=merchant_id, dispute_id=dispute_id)
    return await _render(kassa, kassa.pool, d)


async def list_(kassa: Kassa, *, merchant_id: str, limit: int, starting_after: str | None,
                ending_before: str | None, payment_intent: str | None = None,
                charge: str | None = None, created: Bounds | None = None
                ) -> tuple[list[dict[str, Any]], bool]:
    items, more = await disputes_db.list_disputes(
        kassa.pool, merchant_id=merchant_id, limit=limit, starting_after=starting_after,
        ending_before=ending_before, payment_intent=payment_intent, charge=charge,
        created=created)
    return [await _render(kassa, kassa.pool, d) for d in items], more


async def update(kassa: Kassa, *, merchant_id: str, dispute_id: str,
                 evidence: Mapping[str, str] | None = None,
                 metadata: Mapping[str, str] | None = None, submit: bool = False,
                 idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    """Save evidence (text fields) and metadata; ``submit`` sends the evidence to the
    issuer through the PSP and moves the dispute to under review."""
    d = await load(kassa, merchant_id=merchant_id, dispute_id=dispute_id)
    evidence = dict(evidence or {})
    if evidence or submit:
        probe = copy.deepcopy(d)  # validate before anything leaves kassa
        if submit and _resuming(idempotency) and d.status not in disputes.RESPONDABLE:
            # this key's earlier holder died after its PSP call and the PSP's webhook
            # recorded the submission: send the same evidence again (a no-op at the PSP)
            sent = {k: v for k, v in {**d.evidence, **evidence}.items() if v}
        else:
            probe.update_evidence(evidence, submit=submit, now=kassa.clock())
            sent = probe.evidence
        if submit:
            await _claim_key(kassa, idempotency)
            await _call_psp(kassa.psp(d.psp).submit_dispute_evidence(
                psp_dispute_id=d.psp_dispute_id, evidence=sent))
    for _ in range(CAS_RETRIES):
        d = await load(kassa, merchant_id=merchant_id, dispute_id=dispute_id)
        change: DisputeChange | None = None
        if evidence or submit:
            if submit and d.status not in disputes.RESPONDABLE:
                # the PSP's own webhook recorded the submission (or the decision) first
                d.evidence = {k: v for k, v in {**d.evidence, **evidence}.items() if v}
            else:
                change = d.update_evidence(evidence, submit=submit, now=kassa.clock())
        if metadata is not None:
            d.metadata = {**d.metadata, **metadata}
        try:
            return await _save_answer(kassa, d, change, idempotency)
        except ConcurrentModification:
            continue
    raise ConcurrentModification("The dispute is changing concurrently; retry.")


async def close(kassa: Kassa, *, merchant_id: str, dispute_id: str,
                idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    """Concede the dispute (Stripe's ``close``): it is lost, and the funds stay withdrawn."""
    d = await load(kassa, merchant_id=merchant_id, dispute_id=dispute_id)
    if not (_resuming(idempotency) and d.status is DisputeStatus.LOST):
        copy.deepcopy(d).accept()  # refuse before telling the PSP
    # (resuming a dead holder's concession the PSP's webhook already recorded: the
    # repeated acceptance below is a no-op at the PSP)
    await _claim_key(kassa, idempotency)
    await _call_psp(kassa.psp(d.psp).accept_dispute(psp_dispute_id=d.psp_dispute_id))
    for _ in range(CAS_RETRIES):
        d = await load(kassa, merchant_id=merchant_id, dispute_id=dispute_id)
        if d.status is DisputeStatus.LOST:  # the PSP's webhook recorded it first
            obj = await _render(kassa, kassa.pool, d)
            async with UnitOfWork(kassa, idempotency) as uow:
                await uow.commit(response=obj)
            return obj
        change = d.accept()
        try:
            return await _save_answer(kassa, d, change, idempotency)
        except ConcurrentModification:
            continue
    raise ConcurrentModification("The dispute is changing concurrently; retry.")


def _resuming(idempotency: IdempotencyHandle | None) -> bool:
    """This request took over the Idempotency-Key of an earlier holder that died."""
    return idempotency is not None and idempotency.took_over


async def _claim_key(kassa: Kassa, idempotency: IdempotencyHandle | None) -> None:
    """Claim the Idempotency-Key before the PSP hears of the answer (ARCHITECTURE §4).

    A key already taken raises IdempotencyKeyTaken here, so the caller answers from the
    earlier request (different parameters: 400, still running: 409, done: its replay)
    without a PSP call. The claim records no side effect: if the PSP then refuses or is
    unreachable, the key is released and a retry runs afresh (the PSP call is idempotent);
    if the process dies, the lock goes stale and a retry takes the key over."""
    if idempotency is None or idempotency.claimed:
        return
    async with UnitOfWork(kassa, idempotency) as uow:
        await uow.commit(side_effects=False)


async def _save_answer(kassa: Kassa, d: Dispute, change: DisputeChange | None,
                       idempotency: IdempotencyHandle | None) -> dict[str, Any]:
    """Record a merchant's change to an existing dispute with the response it answers."""
    async with UnitOfWork(kassa, idempotency) as uow:
        conn = await uow.connection()
        obj = await _record(kassa, uow, conn, d, change, new=False)
        await uow.commit(response=obj)
    return obj


async def _call_psp(call: Awaitable[None]) -> None:
    try:
        await call
    except PSPRetryable:
        raise ConcurrentModification(
            "The payment processor is unavailable; retry the request.") from None
    except PSPRejected as exc:
        raise InvalidRequest(f"The payment processor refused the request: {exc}",
                             code="dispute_not_updatable") from None
