"""Cancel a PaymentIntent, and the void saga behind it (also used by expiry.py).

A void is needed whenever something is open at the PSP: held funds (``requires_capture``)
or an authentication the customer could still complete (``requires_action``). Canceling
only locally in the second case let the customer finish 3-D Secure afterwards and be
charged with nothing in kassa's books.

The void can race the customer completing 3-D Secure. What kassa records is what really
happened at the PSP:

- void first: the authentication is void at the PSP (completing it afterwards changes
  nothing there); the payment is ``canceled``.
- completion first: the PSP refuses the void; kassa asks it how the authorisation ended
  and records that (ledger included). The cancel then goes on from the new state: an
  authorised hold is voided as usual, a declined one is canceled, and a captured payment
  answers ``payment_intent_unexpected_state`` — it ``succeeded``; refund it if needed.
"""

from __future__ import annotations

from typing import Any

from kassa import representations
from kassa.db import ops
from kassa.db import payments as payments_db
from kassa.domain.errors import IllegalTransition, InvalidRequest
from kassa.domain.money import Money
from kassa.domain.payments import (
    AUTOMATIC,
    Attempt,
    AttemptStatus,
    Operation,
    PaymentIntent,
    PaymentStatus,
    VoidPurpose,
)
from kassa.psp.base import Outcome, PSPResult
from kassa.services import charges, saga
from kassa.services.capture import release_hold
from kassa.services.context import Kassa
from kassa.services.resume import finish_orphan, load, took_over
from kassa.services.uow import IdempotencyHandle, UnitOfWork

PI = representations.payment_intent
AUTHENTICATION_EXPIRED = {
    "type": "invalid_request_error",
    "code": "payment_intent_authentication_failure",
    "message": "The provided PaymentMethod has failed authentication: it was not completed "
               "in time. Provide a new payment method or confirm again.",
}


async def cancel(kassa: Kassa, *, merchant_id: str, payment_id: str,
                 cancellation_reason: str | None = None,
                 idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    p = await load(kassa, merchant_id=merchant_id, payment_id=payment_id)
    if took_over(idempotency) and p.status in (PaymentStatus.PROCESSING,
                                               PaymentStatus.CANCELED):
        return await finish_orphan(kassa, p, idempotency)
    for _ in range(3):  # a void that lost to the customer's authentication goes on
        try:
            return await _cancel_once(kassa, p, cancellation_reason, idempotency)
        except _Moved:
            p = await load(kassa, merchant_id=merchant_id, payment_id=payment_id)
    return PI(p)


class _Moved(Exception):
    """The void found the payment in another state than it started from."""


async def _cancel_once(kassa: Kassa, p: PaymentIntent, reason: str | None,
                       idempotency: IdempotencyHandle | None) -> dict[str, Any]:
    needs_void = p.cancel(reason=reason, now=kassa.clock())
    if not needs_void:
        async with UnitOfWork(kassa, idempotency) as uow:
            p.pending_attempt_id = None
            uow.add(ops.UpdatePayment.of(p))
            uow.emit(merchant_id=p.merchant_id, type="payment_intent.canceled", obj=PI(p))
            await uow.commit(response=PI(p))
        return PI(p)
    result = await void(kassa, p, VoidPurpose.CANCEL, idempotency)
    if result.get("status") not in (PaymentStatus.CANCELED.value,
                                    PaymentStatus.PROCESSING.value):
        current = await saga.reload(kassa, p.id)
        if current.status is PaymentStatus.SUCCEEDED:
            error = IllegalTransition(current.status.value, PaymentStatus.CANCELED.value,
                                      action="cancel")
            error.message += (" The customer completed authentication before the cancel "
                              "reached the processor; refund the payment instead.")
            async with UnitOfWork(kassa, idempotency) as uow:
                await uow.commit(response=error)
            raise error
        raise _Moved()
    return result


async def void(kassa: Kassa, p: PaymentIntent, purpose: VoidPurpose,
               idempotency: IdempotencyHandle | None) -> dict[str, Any]:
    """Void what is open at the PSP for ``p`` (requires_capture or requires_action)."""
    assert p.psp is not None and p.psp_reference is not None
    attempt = Attempt(
        id=kassa.ids("attempt"), merchant_id=p.merchant_id, payment_intent_id=p.id,
        operation=Operation.VOID, psp=p.psp, status=AttemptStatus.STARTED,
        amount=Money(p.amount_capturable, p.currency), psp_reference=p.psp_reference,
        purpose=purpose)
    if purpose is VoidPurpose.HOLD_EXPIRED:
        p.cancellation_reason = AUTOMATIC
    p.start_void(attempt.id)
    await saga.commit_start(kassa, p, attempt, idempotency)
    psp, ref = kassa.psp(p.psp), p.psp_reference
    return await saga.run(kassa, attempt,
                          lambda: psp.void(idempotency_key=attempt.id, psp_reference=ref),
                          payment=p, unknown_answer=PI(p), idempotency=idempotency)


# a void the PSP refuses because nothing is authorised any more: as good as done
ALREADY_VOID = frozenset({"authorization_expired", "already_voided", "authorization_voided"})


async def finish_void(kassa: Kassa, attempt: Attempt, result: PSPResult, *,
                      payment: PaymentIntent | None = None,
                      idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    was, expected = saga.cas_on(attempt)
    p = payment or await saga.reload(kassa, attempt.payment_intent_id)
    if result.outcome is Outcome.VOID_PENDING:
        return await _void_pending(kassa, attempt, p, was, expected, idempotency)
    auth = await payments_db.get_attempt(kassa.pool, p.latest_charge) if p.latest_charge else None
    authenticating = auth is not None and auth.status is AttemptStatus.REQUIRES_ACTION
    ours = p.status is PaymentStatus.PROCESSING and p.pending_attempt_id == attempt.id
    voided = result.outcome is Outcome.VOIDED or result.decline_code in ALREADY_VOID
    error: InvalidRequest | None = None
    event: str | None = None
    charge_event: tuple[str, Attempt | None] | None = None  # (type, the charge's attempt)
    store = True
    if voided and not ours and p.status is PaymentStatus.SUCCEEDED:
        # the PSP confirms voiding a payment kassa recorded as captured (the customer's
        # authentication won the race): one of the two is wrong, and only an operator can
        # tell which; accepting it silently would keep money the PSP may not collect
        raise saga.Unrecordable(
            f"{attempt.psp} confirmed the void {attempt.id} of {p.id}, which kassa "
            f"recorded as captured ({p.amount_received} {p.currency}): check it at the "
            "PSP and refund or reverse the capture")
    async with UnitOfWork(kassa, idempotency) as uow:
        if voided:
            attempt.status = AttemptStatus.SUCCEEDED
            if authenticating:
                assert auth is not None
                # nothing was held: the authentication is void at the PSP, for good
                auth.status = AttemptStatus.FAILED
                auth.error = {"code": "payment_intent_authentication_failure",
                              "message": "The authentication was voided."}
                uow.add(ops.FinishAttempt.of(auth, expected=(AttemptStatus.REQUIRES_ACTION,)))
                charge_event = ("charge.failed", auth)
            if not ours and p.status in (PaymentStatus.REQUIRES_CAPTURE,
                                         PaymentStatus.REQUIRES_ACTION):
                p.start_void(attempt.id)  # a webhook moved it meanwhile (e.g. authorised)
                ours = True
            if not ours:
                pass  # already canceled or failed by the time this void is recorded
                # (captured: refused above, for an operator)
            elif attempt.purpose is VoidPurpose.ACTION_EXPIRED and authenticating:
                p.authentication_expired(AUTHENTICATION_EXPIRED)
                event = "payment_intent.payment_failed"
            else:
                if p.amount_capturable > 0:
                    release_hold(uow, p, attempt.psp)
                    # Stripe refunds an uncaptured charge when its intent is canceled, and
                    # expires it when its authorisation lapses
                    charge_event = ("charge.expired" if attempt.purpose is
                                    VoidPurpose.HOLD_EXPIRED else "charge.refunded", None)
                p.void_succeeded(now=kassa.clock())
                event = "payment_intent.canceled"
        else:
            attempt.status = AttemptStatus.FAILED
            attempt.error = {"message": result.message or "The processor refused to void.",
                             "code": "void_failed", "psp_code": result.decline_code}
            if ours:
                p.void_failed(was=PaymentStatus.REQUIRES_ACTION if authenticating
                              else PaymentStatus.REQUIRES_CAPTURE)
            error = InvalidRequest(str(attempt.error["message"]), code="void_failed")
            # refused while authenticating: the customer may have completed first, and
            # the cancel goes on from what that made of the payment (not its answer yet)
            store = not authenticating
        uow.add(ops.FinishAttempt.of(attempt, expected=expected))
        if ours:
            uow.add(ops.UpdatePayment.of(p))
        if charge_event is not None and p.latest_charge is not None:
            uow.emit(merchant_id=p.merchant_id, type=charge_event[0],
                     obj=await charges.event_object(kassa, charge_id=p.latest_charge,
                                                    payment=p, attempt=charge_event[1]))
        if event is not None:
            uow.emit(merchant_id=p.merchant_id, type=event, obj=PI(p))
        if store:
            await saga.commit_outcome(kassa, uow, attempt, error or PI(p), idempotency)
        else:
            await uow.commit()
    if not store:
        assert auth is not None
        await saga.resolve(kassa, auth)  # learn how the authorisation ended
        return PI(await saga.reload(kassa, p.id))
    if error is not None:
        raise error
    return PI(p)


async def _void_pending(kassa: Kassa, attempt: Attempt, p: PaymentIntent,
                        was: AttemptStatus, expected: tuple[AttemptStatus, ...],
                        idempotency: IdempotencyHandle | None) -> dict[str, Any]:
    """The PSP accepted the void and confirms it later (Adyen's cancel ``received``): the
    hold stays on the ledger and the payment ``processing`` until the CANCELLATION
    notification (or recovery) records the void or its refusal."""
    if was is AttemptStatus.PENDING:
        return PI(p)  # still pending: nothing new to record
    async with UnitOfWork(kassa, idempotency) as uow:
        attempt.status = AttemptStatus.PENDING
        uow.add(ops.FinishAttempt.of(attempt, expected=expected,
                                     check_after_s=kassa.watch.pending_poll_seconds))
        await saga.commit_outcome(kassa, uow, attempt, PI(p), idempotency)
    return PI(p)


async def repeat(kassa: Kassa, attempt: Attempt) -> PSPResult:
    return await kassa.psp(attempt.psp).void(idempotency_key=attempt.id,
                                            psp_reference=attempt.psp_reference or "")

