"""Refund use cases: several partial refunds up to the captured amount, each a saga like confirm."""

from __future__ import annotations

from typing import Any

from kassa.db import repositories as repo
from kassa.db.repositories import Attempt
from kassa.domain import ledger, objects
from kassa.domain.errors import ConcurrentModification, InvalidRequest, NotFound
from kassa.domain.money import Money
from kassa.domain.payments import (
    REFUND_REASONS,
    AttemptStatus,
    Operation,
    PaymentIntent,
    Refund,
    RefundStatus,
)
from kassa.psp.base import Outcome, PSPResult, PSPRetryable
from kassa.services import payments
from kassa.services.context import Kassa
from kassa.services.uow import IdempotencyHandle, UnitOfWork

CAS_RETRIES = 8


def _obj(r: Refund, p: PaymentIntent) -> dict[str, Any]:
    return objects.refund(r, charge=p.latest_charge)


async def create(kassa: Kassa, *, merchant_id: str, payment_intent: str | None,
                 amount: int | None = None, reason: str | None = None,
                 metadata: dict[str, str] | None = None,
                 idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    if not payment_intent:
        raise InvalidRequest("You must pass payment_intent.", param="payment_intent",
                             code="parameter_missing")
    if reason is not None and reason not in REFUND_REASONS:
        raise InvalidRequest(f"Invalid reason: {reason}", param="reason")
    if idempotency is not None and idempotency.took_over and idempotency.resource_id:
        return await _finish_orphan(kassa, merchant_id, idempotency.resource_id, idempotency)
    # step 1: reserve the amount on the payment (CAS; retried when refunds race) and
    # record the refund and its attempt together
    for _ in range(CAS_RETRIES):
        p = await payments.load(kassa, merchant_id=merchant_id, payment_id=payment_intent)
        value = p.reserve_refund(amount)
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
                uow.add(repo.op_update_payment(p))
                uow.add(repo.op_insert_refund(r))
                uow.add(repo.op_insert_attempt(attempt))
                uow.emit(merchant_id=merchant_id, type="refund.created", obj=_obj(r, p))
                await uow.commit(resource_id=r.id)
            break
        except ConcurrentModification:
            continue
    else:
        raise ConcurrentModification("Too many concurrent refunds on this payment; retry.")
    try:
        result = await kassa.psp(p.psp).refund(
            idempotency_key=attempt.id, psp_reference=p.psp_reference, amount=r.amount)
    except PSPRetryable:
        async with UnitOfWork(kassa, idempotency) as uow:
            uow.add(repo.op_mark_attempt_unknown(attempt.id))
            await uow.commit(response=_obj(r, p))
        return _obj(r, p)
    return await finish_refund(kassa, attempt, result, idempotency=idempotency)


async def finish_refund(kassa: Kassa, attempt: Attempt, result: PSPResult, *,
                        idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    """Step 3: record the PSP's answer; post the ledger on success, release the reserved
    amount on failure. CAS on the attempt makes it safe to race with recovery."""
    assert attempt.refund_id is not None
    attempt.psp_reference = result.psp_reference or attempt.psp_reference
    for _ in range(CAS_RETRIES):
        r = await repo.get_refund(kassa.pool, merchant_id=None, refund_id=attempt.refund_id)
        p = await repo.get_payment_unscoped(kassa.pool, attempt.payment_intent_id)
        assert r is not None and p is not None
        try:
            async with UnitOfWork(kassa, idempotency) as uow:
                if result.outcome in (Outcome.REFUNDED, Outcome.REFUND_PENDING):
                    attempt.status = AttemptStatus.SUCCEEDED
                    uow.add(repo.op_finish_attempt(attempt, expected=payments.OPEN))
                    r.psp_reference = result.psp_reference
                    if result.outcome is Outcome.REFUNDED:
                        r.move(RefundStatus.SUCCEEDED)
                        _post_refund(kassa, uow, r, p)
                    uow.add(repo.op_update_refund(r))
                    if r.status is RefundStatus.SUCCEEDED:
                        charge = objects.charge(p, charge_id=p.latest_charge or p.id)
                        uow.emit(merchant_id=r.merchant_id, type="charge.refunded", obj=charge)
                        uow.emit(merchant_id=r.merchant_id, type="refund.updated",
                                 obj=_obj(r, p))
                else:
                    attempt.status = AttemptStatus.FAILED
                    attempt.error = {"code": result.decline_code or "refund_failed",
                                     "message": result.message or "The refund failed."}
                    uow.add(repo.op_finish_attempt(attempt, expected=payments.OPEN))
                    r.move(RefundStatus.FAILED)
                    r.failure_reason = "unknown"
                    uow.add(repo.op_update_refund(r))
                    p.release_refund(r.amount.minor)
                    uow.add(repo.op_update_payment(p))
                    uow.emit(merchant_id=r.merchant_id, type="refund.failed", obj=_obj(r, p))
                await uow.commit(response=_obj(r, p))
            return _obj(r, p)
        except ConcurrentModification:
            current = await repo.get_attempt(kassa.pool, attempt.id)
            assert current is not None
            if current.status not in payments.OPEN:  # recorded by someone else
                r = await repo.get_refund(kassa.pool, merchant_id=None,
                                          refund_id=attempt.refund_id)
                assert r is not None
                return _obj(r, p)
            attempt.status = current.status  # the payment row moved; re-read and retry
    raise ConcurrentModification("Refund could not be recorded; it will be retried.")


def _post_refund(kassa: Kassa, uow: UnitOfWork, r: Refund, p: PaymentIntent) -> None:
    assert p.psp is not None
    now = kassa.clock()
    uow.add(
        repo.op_post_ledger(ledger.refund(merchant_id=r.merchant_id, psp=p.psp, amount=r.amount),
                            merchant_id=r.merchant_id, source_id=r.id),
        repo.op_insert_balance_transaction(
            bt_id=kassa.ids("balance_transaction"), merchant_id=r.merchant_id,
            amount=-r.amount.minor, fee=0, currency=r.amount.currency, type="refund",
            source=r.id, status="available", available_on=now, created=now,
            description="REFUND FOR PAYMENT"))


async def _finish_orphan(kassa: Kassa, merchant_id: str, refund_id: str,
                         idempotency: IdempotencyHandle) -> dict[str, Any]:
    from kassa.services import recovery

    r = await repo.get_refund(kassa.pool, merchant_id=merchant_id, refund_id=refund_id)
    assert r is not None and r.attempt_id is not None
    attempt = await repo.get_attempt(kassa.pool, r.attempt_id)
    if attempt is not None and attempt.status in payments.OPEN:
        await recovery.recover_attempt(kassa, attempt)
    r = await repo.get_refund(kassa.pool, merchant_id=merchant_id, refund_id=refund_id)
    p = await payments.load(kassa, merchant_id=merchant_id, payment_id=r.payment_intent_id) \
        if r else None
    assert r is not None and p is not None
    async with UnitOfWork(kassa, idempotency) as uow:
        await uow.commit(response=_obj(r, p))
    return _obj(r, p)


async def retrieve(kassa: Kassa, *, merchant_id: str, refund_id: str) -> dict[str, Any]:
    r = await repo.get_refund(kassa.pool, merchant_id=merchant_id, refund_id=refund_id)
    if r is None:
        raise NotFound(f"No such refund: '{refund_id}'", param="id")
    p = await payments.load(kassa, merchant_id=merchant_id, payment_id=r.payment_intent_id)
    return _obj(r, p)


async def list_(kassa: Kassa, *, merchant_id: str, limit: int, starting_after: str | None,
                ending_before: str | None, payment_intent: str | None
                ) -> tuple[list[dict[str, Any]], bool]:
    items, more = await repo.list_refunds(kassa.pool, merchant_id=merchant_id, limit=limit,
                                          starting_after=starting_after,
                                          ending_before=ending_before,
                                          payment_intent=payment_intent)
    charges: dict[str, str | None] = {}
    out = []
    for r in items:
        if r.payment_intent_id not in charges:
            p = await repo.get_payment(kassa.pool, merchant_id=merchant_id,
                                       payment_id=r.payment_intent_id)
            charges[r.payment_intent_id] = p.latest_charge if p else None
        out.append(objects.refund(r, charge=charges[r.payment_intent_id]))
    return out, more
