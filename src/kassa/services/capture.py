"""Capture an authorised PaymentIntent (full or partial): a saga, and its finisher.

A capture the PSP only accepts (``pending``) keeps its attempt ``pending`` until the PSP's
webhook or recovery's poll settles it. A capture the PSP refuses because the authorisation
expired releases the hold: the payment is ``canceled`` (``automatic``), as at Stripe.
"""

from __future__ import annotations

from typing import Any

from kassa import representations
from kassa.db import ops
from kassa.db import payments as payments_db
from kassa.domain.errors import InvalidRequest
from kassa.domain.money import Money
from kassa.domain.payments import (
    AUTOMATIC,
    Attempt,
    AttemptStatus,
    Operation,
    PaymentIntent,
    PaymentStatus,
)
from kassa.ledger import journal
from kassa.psp.base import Outcome, PSPResult
from kassa.services import charges, hold_validity, saga
from kassa.services.context import Kassa
from kassa.services.resume import finish_orphan, load, took_over
from kassa.services.uow import IdempotencyHandle, UnitOfWork

PI = representations.payment_intent
# the authorisation is gone at the PSP (expired, or voided there): nothing to capture, the
# hold is released
EXPIRED = frozenset({"authorization_expired", "expired_authorization", "authorization_voided",
                     "already_voided"})


async def capture(kassa: Kassa, *, merchant_id: str, payment_id: str,
                  amount_to_capture: int | None = None,
                  idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    p = await load(kassa, merchant_id=merchant_id, payment_id=payment_id)
    if took_over(idempotency) and p.status is not PaymentStatus.REQUIRES_CAPTURE:
        return await finish_orphan(kassa, p, idempotency)
    hold_ref = p.latest_charge
    attempt_id = kassa.ids("attempt")
    amount = p.start_capture(attempt_id, amount_to_capture)
    assert p.psp is not None and p.psp_reference is not None and hold_ref is not None
    attempt = Attempt(
        id=attempt_id, merchant_id=merchant_id, payment_intent_id=p.id,
        operation=Operation.CAPTURE, psp=p.psp, status=AttemptStatus.STARTED,
        amount=Money(amount, p.currency), psp_reference=p.psp_reference)
    await saga.commit_start(kassa, p, attempt, idempotency)
    psp, ref = kassa.psp(p.psp), p.psp_reference
    return await saga.run(
        kassa, attempt,
        lambda: psp.capture(idempotency_key=attempt.id, psp_reference=ref,
                            amount=attempt.amount),
        payment=p, unknown_answer=PI(p), idempotency=idempotency)


async def finish_capture(kassa: Kassa, attempt: Attempt, result: PSPResult, *,
                         payment: PaymentIntent | None = None,
                         idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    was, expected = saga.cas_on(attempt)
    p = payment or await saga.reload(kassa, attempt.payment_intent_id)
    if result.outcome is Outcome.CAPTURE_PENDING and was is AttemptStatus.PENDING:
        return PI(p)  # still pending: nothing new to record
    error: InvalidRequest | None = None
    check_after: float | None = None
    attempt.psp_reference = result.psp_reference or attempt.psp_reference
    async with UnitOfWork(kassa, idempotency) as uow:
        if result.outcome is Outcome.CAPTURE_PENDING:
            # the PSP confirms or refuses later; recovery polls in case its webhook is lost
            attempt.status = AttemptStatus.PENDING
            check_after = kassa.watch.pending_poll_seconds
        elif result.outcome is Outcome.CAPTURED:
            attempt.status = AttemptStatus.SUCCEEDED
            captured = attempt.amount
            if result.amount is not None and result.amount != attempt.amount:
                captured = _psp_amount(attempt, result, p)
            # a hold posted again after a rejected capture is captured under this attempt
            # (the payment's first capture is sourced by the payment itself)
            source = p.id if p.hold_ref is None else attempt.id
            hold = p.hold_ref or p.latest_charge
            p.capture_succeeded(captured.minor)
            bt_id = post_capture(kassa, uow, p, gross=captured, held=p.amount,
                                 source_id=source, hold_ref=hold)
            assert p.latest_charge is not None
            uow.emit(merchant_id=p.merchant_id, type="charge.captured",
                     obj=await charges.event_object(kassa, charge_id=p.latest_charge,
                                                    payment=p, balance_transaction=bt_id))
            uow.emit(merchant_id=p.merchant_id, type="payment_intent.succeeded", obj=PI(p))
        elif result.decline_code in EXPIRED or await _lapsed(kassa, p):
            # the PSP let the authorisation lapse: nothing can be captured, the hold is gone
            attempt.status = AttemptStatus.FAILED
            attempt.error = {"message": result.message or "The authorization has expired.",
                             "code": "charge_expired_for_capture"}
            p.capture_failed()
            p.cancellation_reason = AUTOMATIC
            p.start_void(attempt.id)
            p.void_succeeded(now=kassa.clock())
            release_hold(uow, p, attempt.psp)
            assert p.latest_charge is not None
            uow.emit(merchant_id=p.merchant_id, type="charge.expired",
                     obj=await charges.event_object(kassa, charge_id=p.latest_charge,
                                                    payment=p))
            uow.emit(merchant_id=p.merchant_id, type="payment_intent.canceled", obj=PI(p))
            error = InvalidRequest(str(attempt.error["message"]),
                                   code="charge_expired_for_capture")
        else:
            attempt.status = AttemptStatus.FAILED
            # code: what the caller is answered (answer_recorded repeats it); psp_code: why
            attempt.error = {"message": result.message or
                             "The capture was refused by the processor.",
                             "code": "capture_failed", "psp_code": result.decline_code}
            p.capture_failed()
            error = InvalidRequest(str(attempt.error["message"]), code="capture_failed")
        uow.add(ops.FinishAttempt.of(attempt, expected=expected, check_after_s=check_after))
        uow.add(ops.UpdatePayment.of(p))
        await saga.commit_outcome(kassa, uow, attempt, error or PI(p), idempotency)
    if error is not None:
        raise error
    return PI(p)


async def _lapsed(kassa: Kassa, p: PaymentIntent) -> bool:
    """A refused capture whose authorisation is past its validity by now: nothing can be
    captured any more, so the hold is released rather than kept for a capture to come."""
    assert p.psp is not None and p.latest_charge is not None
    charge = await payments_db.get_attempt(kassa.pool, p.latest_charge)
    return charge is not None and bool(charge.created) and \
        kassa.clock() >= charge.created + await hold_validity.seconds(kassa, p.psp)


def _psp_amount(attempt: Attempt, result: PSPResult, p: PaymentIntent) -> Money:
    """The PSP captured another amount than asked: record what moved, flagged."""
    assert result.amount is not None
    if result.amount.currency != p.currency or \
            not 0 < result.amount.minor <= p.amount_capturable:
        raise saga.Unrecordable(f"{attempt.psp} reports {result.amount} captured for "
                             f"{attempt.id}, outside the capturable {p.amount_capturable}")
    attempt.error = {"code": "psp_amount_mismatch",
                     "message": f"asked {attempt.amount}, the PSP captured {result.amount}"}
    return result.amount


def post_capture(kassa: Kassa, uow: UnitOfWork, p: PaymentIntent, *, gross: Money,
                 held: Money | None, source_id: str | None = None,
                 hold_ref: str | None = None) -> str:
    """Post the capture and its balance transaction; returns the balance transaction's id."""
    assert p.psp is not None
    fee = kassa.fees.fee_for(gross)
    now = kassa.clock()
    bt_id = kassa.ids("balance_transaction")
    uow.add(journal.capture(
        merchant_id=p.merchant_id, psp=p.psp, gross=gross, fee=fee, held=held,
        payment_id=source_id or p.id, charge_id=p.latest_charge, bt_id=bt_id, now=now,
        available_on=None,  # the merchant's delay, applied by apply.sql
        description=p.description, hold_ref=hold_ref))
    return bt_id


def release_hold(uow: UnitOfWork, p: PaymentIntent, psp: str) -> None:
    """The authorisation is void at the PSP: release its ledger hold (once: hold_ref) —
    the charge's own, or the one posted again after a rejected capture."""
    assert p.latest_charge is not None
    uow.add(journal.release_hold(merchant_id=p.merchant_id, psp=psp, held=p.amount,
                                 charge_id=p.hold_ref or p.latest_charge))


async def reverse(kassa: Kassa, uow: UnitOfWork, attempt: Attempt, p: PaymentIntent
                  ) -> None:
    """The scheme rejected a capture kassa booked (Adyen's CAPTURE_FAILED after CAPTURE):
    nothing will be collected. In the inbound event's unit of work: the capture's posted
    entries are mirrored by a new ``capture_reversal`` transaction (never an edit), and
    while the authorisation is still valid its hold is posted again under ``attempt`` —
    the payment is ``requires_capture`` and may be captured anew, and recovery voids
    the hold at the validity deadline as for any hold; past it, ``canceled``.
    ``attempt`` is the rejected capture's (manual capture) or the charge's own
    (captured at once)."""
    assert p.psp is not None and p.latest_charge is not None
    conn = await uow.connection()
    manual = attempt.operation is Operation.CAPTURE
    entries = await payments_db.capture_entries(
        conn, hold_ref=(p.hold_ref or p.latest_charge) if manual else None, payment_id=p.id)
    if not entries:
        raise saga.Unrecordable(f"no capture of {p.id} is on the ledger to reverse")
    charge = await payments_db.get_attempt(conn, p.latest_charge)
    assert charge is not None
    now = kassa.clock()
    deadline = (charge.created or now) + await hold_validity.seconds(kassa, p.psp)
    valid = now < deadline
    uow.add(journal.capture_reversal(entries, merchant_id=p.merchant_id,
                                     source_id=attempt.id, charge_id=p.latest_charge,
                                     bt_id=kassa.ids("balance_transaction"), now=now))
    if valid:
        uow.add(journal.hold(merchant_id=p.merchant_id, psp=p.psp, amount=p.amount,
                             attempt_id=attempt.id))
        # watched again for the hold's expiry (recovery's expire_hold voids it then),
        # whatever the charge's attempt status is (kept as it is): a re-held payment must
        # never wait in requires_capture with no deadline
        uow.add(ops.FinishAttempt.of(charge, expected=(charge.status,),
                                     check_after_s=max(0.0, deadline - now)))
    p.capture_reversed(hold_ref=attempt.id if valid else None, now=now)
    uow.add(ops.UpdatePayment.of(p))
    uow.emit(merchant_id=p.merchant_id, type="charge.updated",
             obj=await charges.event_object(kassa, charge_id=p.latest_charge, payment=p))
    if valid:
        uow.emit(merchant_id=p.merchant_id, type="payment_intent.amount_capturable_updated",
                 obj=PI(p))
    else:
        uow.emit(merchant_id=p.merchant_id, type="charge.expired",
                 obj=await charges.event_object(kassa, charge_id=p.latest_charge, payment=p))
        uow.emit(merchant_id=p.merchant_id, type="payment_intent.canceled", obj=PI(p))


async def repeat(kassa: Kassa, attempt: Attempt) -> PSPResult:
    return await kassa.psp(attempt.psp).capture(
        idempotency_key=attempt.id, psp_reference=attempt.psp_reference or "",
        amount=attempt.amount)

