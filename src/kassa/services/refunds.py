"""Refunds: several partial refunds up to the captured amount, each a saga like confirm.

A refund the PSP answers ``pending`` keeps its attempt ``pending`` until the PSP's webhook
or recovery's poll settles it; one that succeeded and later bounces is reversed
(``bounce``). A payment that was charged back is not refundable (``charge_disputed``):
the cardholder already has the money back.
"""

from __future__ import annotations

from typing import Any

from kassa import representations
from kassa.db import disputes as disputes_db
from kassa.db import fx as fx_db
from kassa.db import ops
from kassa.db import payments as payments_db
from kassa.db import refunds as refunds_db
from kassa.domain import ledger
from kassa.domain.errors import ConcurrentModification, InvalidRequest, NotFound
from kassa.domain.lists import Bounds
from kassa.domain.money import Money
from kassa.domain.payments import (
    OPEN_ATTEMPT,
    REFUND_REASONS,
    Attempt,
    AttemptStatus,
    Operation,
    PaymentIntent,
    Refund,
    RefundStatus,
)
from kassa.ledger import journal
from kassa.psp.base import Outcome, PSPResult
from kassa.services import charges, fx, saga
from kassa.services.context import Kassa
from kassa.services.resume import load
from kassa.services.uow import IdempotencyHandle, UnitOfWork

CAS_RETRIES = 8
# Stripe's refund failure reasons; anything else a PSP says becomes `unknown`.
FAILURE_REASONS = frozenset({"charge_for_pending_refund_disputed", "declined",
                             "expired_or_canceled_card", "insufficient_funds",
                             "lost_or_stolen_card", "merchant_request", "unknown"})


def _obj(r: Refund, p: PaymentIntent) -> dict[str, Any]:
    return representations.refund(r, charge=p.latest_charge, payment_method=p.payment_method)


async def create(kassa: Kassa, *, merchant_id: str, payment_intent: str | None,
                 charge: str | None = None, amount: int | None = None,
                 reason: str | None = None, metadata: dict[str, str] | None = None,
                 idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    if charge is not None:
        payment_intent = await charges.refundable_payment(
            kassa, merchant_id=merchant_id, charge_id=charge, payment_intent=payment_intent)
    if not payment_intent:
        raise InvalidRequest("You must pass either charge or payment_intent.",
                             param="payment_intent", code="parameter_missing")
    if reason is not None and reason not in REFUND_REASONS:
        raise InvalidRequest("Invalid reason: must be one of duplicate, fraudulent, or "
                             "requested_by_customer", param="reason")
    if idempotency is not None and idempotency.took_over and idempotency.resource_id:
        return await _finish_orphan(kassa, merchant_id, idempotency.resource_id, idempotency)
    # step 1: reserve the amount on the payment (CAS; retried when refunds race) and
    # record the refund and its attempt together
    for _ in range(CAS_RETRIES):
        p = await load(kassa, merchant_id=merchant_id, payment_id=payment_intent)
        value = p.reserve_refund(amount)
        if await disputes_db.payment_charged_back(kassa.pool, p.id):
            raise InvalidRequest(f"Charge {p.latest_charge} has been charged back; it cannot "
                                 "be refunded as well.", param="payment_intent",
                                 code="charge_disputed")
        assert p.psp is not None and p.psp_reference is not None
        r = Refund(id=kassa.ids("refund"), merchant_id=merchant_id, payment_intent_id=p.id,
                   amount=Money(value, p.currency), status=RefundStatus.PENDING,
                   created=kassa.clock(), reason=reason, metadata=metadata or {},
                   attempt_id=kassa.ids("attempt"))
        assert r.attempt_id is not None
        attempt = Attempt(id=r.attempt_id, merchant_id=merchant_id, payment_intent_id=p.id,
                          operation=Operation.REFUND, psp=p.psp, status=AttemptStatus.STARTED,
                          amount=r.amount, refund_id=r.id, psp_reference=p.psp_reference)
        try:
            async with UnitOfWork(kassa, idempotency) as uow:
                uow.add(ops.UpdatePayment.of(p))
                uow.add(ops.InsertRefund.of(r))
                saga.begin(kassa, uow, attempt, idempotency)
                uow.emit(merchant_id=merchant_id, type="refund.created", obj=_obj(r, p))
                await uow.commit(resource_id=r.id)
            break
        except ConcurrentModification:
            continue
    else:
        raise ConcurrentModification("Too many concurrent refunds on this payment; retry.")
    psp, ref = kassa.psp(p.psp), p.psp_reference
    return await saga.run(
        kassa, attempt,
        lambda: psp.refund(idempotency_key=attempt.id, psp_reference=ref, amount=r.amount),
        payment=p, unknown_answer=_obj(r, p), idempotency=idempotency)


async def finish_refund(kassa: Kassa, attempt: Attempt, result: PSPResult, *,
                        payment: PaymentIntent | None = None,
                        idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    """Step 3: record the PSP's answer; post the ledger on success, release the reserved
    amount on failure. CAS on the attempt makes it safe to race with recovery."""
    assert attempt.refund_id is not None
    was, expected = saga.cas_on(attempt)
    r = await refunds_db.get_refund(kassa.pool, merchant_id=None, refund_id=attempt.refund_id)
    p = await saga.reload(kassa, attempt.payment_intent_id)
    assert r is not None
    if result.outcome is Outcome.REFUND_PENDING and was is AttemptStatus.PENDING:
        return _obj(r, p)  # still pending
    attempt.psp_reference = result.psp_reference or attempt.psp_reference
    check_after: float | None = None
    async with UnitOfWork(kassa, idempotency) as uow:
        if result.outcome in (Outcome.REFUNDED, Outcome.REFUND_PENDING):
            # the refund's own id at the PSP (Adyen's modification pspReference), else
            # what the PSP answered
            r.psp_reference = result.operation_reference or result.psp_reference \
                or r.psp_reference
            if result.outcome is Outcome.REFUNDED:
                attempt.status = AttemptStatus.SUCCEEDED
                r.move(RefundStatus.SUCCEEDED)
                await post_refund(kassa, uow, r, p)
                assert p.latest_charge is not None
                uow.emit(merchant_id=r.merchant_id, type="charge.refunded",
                         obj=await charges.event_object(kassa, charge_id=p.latest_charge,
                                                        payment=p, refund=r))
                _refund_updated(uow, r, p)
            else:  # the PSP settles it later; recovery polls in case its webhook is lost
                attempt.status = AttemptStatus.PENDING
                check_after = kassa.watch.pending_poll_seconds
            uow.add(ops.UpdateRefund.of(r))
        else:
            attempt.status = AttemptStatus.FAILED
            attempt.error = {"code": result.decline_code or "refund_failed",
                             "message": result.message or "The refund failed."}
            r.move(RefundStatus.FAILED)
            r.failure_reason = (result.decline_code if result.decline_code in FAILURE_REASONS
                                else "unknown")
            uow.add(ops.UpdateRefund.of(r))
            p.release_refund(r.amount.minor)
            uow.add(ops.UpdatePayment.of(p))
            uow.emit(merchant_id=r.merchant_id, type="refund.failed", obj=_obj(r, p))
            if was is AttemptStatus.PENDING:  # it was reported pending before
                _refund_updated(uow, r, p)
        uow.add(ops.FinishAttempt.of(attempt, expected=expected, check_after_s=check_after))
        await saga.commit_outcome(kassa, uow, attempt, _obj(r, p), idempotency)
    return _obj(r, p)


async def post_refund(kassa: Kassa, uow: UnitOfWork, r: Refund, p: PaymentIntent) -> None:
    """The refund's posting: a converted payment's at its original rate, traded at the
    current one (domain/fx.py; a rate read only for a converted payment)."""
    assert p.psp is not None
    now = kassa.clock()
    current = None if p.fx is None else await fx.trading_rate(kassa, kassa.pool, p.fx)
    uow.add(journal.refund(r, psp=p.psp, bt_id=kassa.ids("balance_transaction"), now=now,
                           conversion=p.fx, current=current,
                           settled=await _refund_share(kassa, uow, r, p)))


async def _refund_share(kassa: Kassa, uow: UnitOfWork, r: Refund, p: PaymentIntent
                        ) -> Money | None:
    """What a converted payment's refund takes from the merchant: the running total
    refunded (this one included) converted at the original rate, less what the posted
    refunds took already. Partial refunds so add up to the converted total, never more
    than the capture credited (each one rounded alone would drift by up to half a minor
    unit per refund, either way). Never below zero (refunds posted before this rule may
    have taken more)."""
    if p.fx is None:
        return None
    assert p.psp is not None
    # two refunds of the payment finishing at once would each see the other's posting
    # missing: the payment's row lock, held to this unit of work's commit, orders them
    conn = await uow.connection()
    await payments_db.lock_payment_unscoped(conn, p.id)
    presented, taken = await fx_db.refunded_so_far(
        conn, payment_id=p.id, merchant_account=ledger.merchant_available(p.merchant_id),
        receivable=ledger.psp_receivable(p.psp), presentment=p.currency)
    total = p.fx.settle(Money(presented + r.amount.minor, p.currency)).minor
    return Money(max(0, total - taken), p.fx.settlement)


async def bounce(kassa: Kassa, uow: UnitOfWork, r: Refund, p: PaymentIntent,
           failure_code: str | None) -> None:
    """A refund that succeeded failed later at the PSP (the card could not take it): its
    posting is reversed and the amount is refundable again."""
    assert p.psp is not None
    r.move(RefundStatus.FAILED)
    r.failure_reason = failure_code if failure_code in FAILURE_REASONS else "unknown"
    uow.add(ops.UpdateRefund.of(r))
    p.release_refund(r.amount.minor)
    uow.add(ops.UpdatePayment.of(p))
    now = kassa.clock()
    current = None if p.fx is None else await fx.trading_rate(kassa, kassa.pool, p.fx)
    taken = None if p.fx is None else await fx_db.refund_taken(
        kassa.pool, refund_id=r.id, merchant_account=ledger.merchant_available(p.merchant_id))
    # the merchant gets back exactly what this refund's posting took (its share)
    uow.add(journal.refund_failure(r, psp=p.psp, bt_id=kassa.ids("balance_transaction"),
                                   now=now, conversion=p.fx, current=current,
                                   settled=None if p.fx is None or taken is None
                                   else Money(taken, p.fx.settlement)))
    uow.emit(merchant_id=r.merchant_id, type="refund.failed", obj=_obj(r, p))
    _refund_updated(uow, r, p)


def _refund_updated(uow: UnitOfWork, r: Refund, p: PaymentIntent) -> None:
    """Stripe sends its legacy charge.refund.updated (carrying the refund) beside each
    refund.updated."""
    refund_obj = _obj(r, p)
    for type_ in ("refund.updated", "charge.refund.updated"):
        uow.emit(merchant_id=r.merchant_id, type=type_, obj=refund_obj)


async def repeat(kassa: Kassa, attempt: Attempt) -> PSPResult:
    return await kassa.psp(attempt.psp).refund(
        idempotency_key=attempt.id, psp_reference=attempt.psp_reference or "",
        amount=attempt.amount)



async def _finish_orphan(kassa: Kassa, merchant_id: str, refund_id: str,
                         idempotency: IdempotencyHandle) -> dict[str, Any]:
    r = await refunds_db.get_refund(kassa.pool, merchant_id=merchant_id, refund_id=refund_id)
    assert r is not None and r.attempt_id is not None
    attempt = await payments_db.get_attempt(kassa.pool, r.attempt_id)
    if attempt is not None and attempt.status in OPEN_ATTEMPT:
        await saga.resolve(kassa, attempt, idempotency)
    r = await refunds_db.get_refund(kassa.pool, merchant_id=merchant_id, refund_id=refund_id)
    assert r is not None
    p = await load(kassa, merchant_id=merchant_id, payment_id=r.payment_intent_id)
    if not idempotency.completed:
        async with UnitOfWork(kassa, idempotency) as uow:
            await uow.commit(response=_obj(r, p))
    return _obj(r, p)


async def retrieve(kassa: Kassa, *, merchant_id: str, refund_id: str) -> dict[str, Any]:
    r = await refunds_db.get_refund(kassa.pool, merchant_id=merchant_id, refund_id=refund_id)
    if r is None:
        raise NotFound(f"No such refund: '{refund_id}'", param="id")
    p = await load(kassa, merchant_id=merchant_id, payment_id=r.payment_intent_id)
    return _obj(r, p)


async def list_(kassa: Kassa, *, merchant_id: str, limit: int, starting_after: str | None,
                ending_before: str | None, payment_intent: str | None,
                charge: str | None = None, created: Bounds | None = None
                ) -> tuple[list[dict[str, Any]], bool]:
    items, more = await refunds_db.list_refunds(kassa.pool, merchant_id=merchant_id, limit=limit,
                                                starting_after=starting_after,
                                                ending_before=ending_before,
                                                payment_intent=payment_intent, charge=charge,
                                                created=created)
    payments: dict[str, PaymentIntent | None] = {}
    out = []
    for r in items:
        if r.payment_intent_id not in payments:
            payments[r.payment_intent_id] = await payments_db.get_payment(
                kassa.pool, merchant_id=merchant_id, payment_id=r.payment_intent_id)
        p = payments[r.payment_intent_id]
        out.append(representations.refund(r, charge=p.latest_charge if p else None,
                                          payment_method=p.payment_method if p else None))
    return out, more
