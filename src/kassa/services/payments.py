"""Payment intent use cases: create, confirm, capture, cancel — each a saga (ARCHITECTURE §3).

Step 1 commits the intent to `processing` with a `started` attempt; step 2 calls the PSP with
the attempt id as its idempotency key, outside any transaction; step 3 records the outcome,
the ledger postings and the outbox events in one transaction. A crash between 1 and 3 is
finished by services.recovery, which uses the same step-3 functions below.
"""

from __future__ import annotations

from typing import Any

from kassa.db import repositories as repo
from kassa.db.repositories import Attempt
from kassa.domain import ledger, objects
from kassa.domain.errors import (
    CardError,
    ConcurrentModification,
    IllegalTransition,
    InvalidRequest,
    NotFound,
)
from kassa.domain.money import Money, UnknownCurrency, normalize_currency
from kassa.domain.payments import (
    AttemptStatus,
    Operation,
    PaymentIntent,
    PaymentStatus,
    validate_amount,
)
from kassa.psp.base import AuthorizeRequest, Outcome, PSPResult, PSPRetryable
from kassa.services.context import Kassa
from kassa.services.uow import IdempotencyHandle, UnitOfWork

OPEN = (AttemptStatus.STARTED, AttemptStatus.UNKNOWN)
PI = objects.payment_intent


async def load(kassa: Kassa, *, merchant_id: str, payment_id: str) -> PaymentIntent:
    p = await repo.get_payment(kassa.pool, merchant_id=merchant_id, payment_id=payment_id)
    if p is None:
        raise NotFound(f"No such payment_intent: '{payment_id}'", param="intent")
    return p


async def _answer(kassa: Kassa, p: PaymentIntent,
                  idempotency: IdempotencyHandle | None) -> dict[str, Any]:
    """Store the current state as the key's response (after a takeover) and return it."""
    async with UnitOfWork(kassa, idempotency) as uow:
        await uow.commit(response=PI(p))
    return PI(p)


async def _check_payment_method(kassa: Kassa, merchant_id: str, pm: str) -> None:
    card = await kassa.payment_methods.resolve(merchant_id=merchant_id, payment_method=pm)
    if card is None:
        raise InvalidRequest(f"No such PaymentMethod: '{pm}'", param="payment_method",
                             code="resource_missing")


async def create(kassa: Kassa, *, merchant_id: str, amount: int, currency: str,
                 capture_method: str = "automatic", payment_method: str | None = None,
                 description: str | None = None, metadata: dict[str, str] | None = None,
                 confirm: bool = False, return_url: str | None = None,
                 idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    validate_amount(amount)
    try:
        currency = normalize_currency(currency)
    except UnknownCurrency:
        raise InvalidRequest(f"Invalid currency: {currency}. Currency must be a supported "
                             "ISO 4217 code.", param="currency", code="invalid_currency") from None
    if capture_method not in ("automatic", "manual"):
        raise InvalidRequest(f"Invalid capture_method: {capture_method}", param="capture_method")
    if payment_method is not None:
        await _check_payment_method(kassa, merchant_id, payment_method)
    p = PaymentIntent(
        id=kassa.ids("payment_intent"), merchant_id=merchant_id,
        amount=Money(amount, currency), capture_method=capture_method,
        status=(PaymentStatus.REQUIRES_CONFIRMATION if payment_method
                else PaymentStatus.REQUIRES_PAYMENT_METHOD),
        created=kassa.clock(), payment_method=payment_method, description=description,
        metadata=metadata or {})
    if confirm and payment_method is None:
        raise InvalidRequest("You must provide a payment_method to confirm.",
                             param="payment_method", code="parameter_missing")
    if idempotency is not None and idempotency.took_over and idempotency.resource_id:
        # The previous holder of this key created the intent, then died before answering.
        p = await load(kassa, merchant_id=merchant_id, payment_id=idempotency.resource_id)
        if p.status is PaymentStatus.PROCESSING:
            return await _finish_orphan(kassa, p, idempotency)
        if not (confirm and p.status is PaymentStatus.REQUIRES_CONFIRMATION):
            return await _answer(kassa, p, idempotency)
    elif confirm:
        # create and confirm's first step commit together: one transaction, not two
        return await _authorize(kassa, p, return_url=return_url, idempotency=idempotency,
                                new=True)
    else:
        async with UnitOfWork(kassa, idempotency) as uow:
            uow.add(repo.op_insert_payment(p))
            uow.emit(merchant_id=merchant_id, type="payment_intent.created", obj=PI(p))
            await uow.commit(response=PI(p), resource_id=p.id)
        return PI(p)
    return await _authorize(kassa, p, return_url=return_url, idempotency=idempotency)


async def confirm(kassa: Kassa, *, merchant_id: str, payment_id: str,
                  payment_method: str | None = None, return_url: str | None = None,
                  idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    p = await load(kassa, merchant_id=merchant_id, payment_id=payment_id)
    if _took_over(idempotency) and p.status not in (PaymentStatus.REQUIRES_PAYMENT_METHOD,
                                                    PaymentStatus.REQUIRES_CONFIRMATION,
                                                    PaymentStatus.REQUIRES_ACTION):
        # The request that held this key died mid-saga: finish its attempt, then answer.
        return await _finish_orphan(kassa, p, idempotency)
    if p.status is PaymentStatus.REQUIRES_ACTION and payment_method in (None, p.payment_method):
        return await _continue_after_action(kassa, p, idempotency)
    if payment_method is not None:
        await _check_payment_method(kassa, merchant_id, payment_method)
        if p.status in (PaymentStatus.REQUIRES_PAYMENT_METHOD,
                        PaymentStatus.REQUIRES_CONFIRMATION):
            p.payment_method = payment_method
    return await _authorize(kassa, p, return_url=return_url, idempotency=idempotency)


async def _authorize(kassa: Kassa, p: PaymentIntent, *, return_url: str | None,
                     idempotency: IdempotencyHandle | None, new: bool = False
                     ) -> dict[str, Any]:
    assert p.payment_method is not None or p.status is not PaymentStatus.REQUIRES_CONFIRMATION
    psp = kassa.router.choose(p)
    attempt = Attempt(
        id=kassa.ids("charge"), merchant_id=p.merchant_id, payment_intent_id=p.id,
        operation=Operation.AUTHORIZE, psp=psp.name, status=AttemptStatus.STARTED,
        amount=p.amount, capture=p.capture_method == "automatic")
    created = PI(p) if new else None
    p.start_authorization(attempt.id, psp.name)
    # step 1: the recovery point — from here on the attempt id is the PSP idempotency key
    async with UnitOfWork(kassa, idempotency) as uow:
        if created is not None:
            uow.add(repo.op_insert_payment(p))
            uow.emit(merchant_id=p.merchant_id, type="payment_intent.created", obj=created)
        else:
            uow.add(repo.op_update_payment(p))
        uow.add(repo.op_insert_attempt(attempt))
        await uow.commit(resource_id=p.id if created is not None else None)
    assert p.payment_method is not None
    card = await kassa.payment_methods.resolve(merchant_id=p.merchant_id,
                                               payment_method=p.payment_method)
    if card is None:  # removed between validation and now
        result = PSPResult(Outcome.DECLINED, "", decline_code="invalid_payment_method",
                           message="The payment method is no longer available.")
    else:
        try:
            result = await psp.authorize(AuthorizeRequest(
                idempotency_key=attempt.id, amount=p.amount, card=card, capture=attempt.capture,
                merchant_id=p.merchant_id, description=p.description, return_url=return_url))
        except PSPRetryable:
            return await _leave_unknown(kassa, p, attempt, idempotency)
    return await finish_authorization(kassa, attempt, result, payment=p, idempotency=idempotency)


async def _leave_unknown(kassa: Kassa, p: PaymentIntent, attempt: Attempt,
                         idempotency: IdempotencyHandle | None) -> dict[str, Any]:
    """The PSP did not answer: the payment stays `processing` until recovery learns the truth."""
    async with UnitOfWork(kassa, idempotency) as uow:
        uow.add(repo.op_mark_attempt_unknown(attempt.id))
        await uow.commit(response=PI(p))
    return PI(p)


def decline_error(result: PSPResult) -> dict[str, Any]:
    code = "card_declined"
    if result.decline_code in ("expired_card", "incorrect_cvc", "incorrect_number",
                               "processing_error"):
        code = result.decline_code
    return {
        "type": "card_error",
        "code": code,
        "decline_code": result.decline_code,
        "message": result.message or "Your card was declined.",
    }


async def finish_authorization(kassa: Kassa, attempt: Attempt, result: PSPResult, *,
                               payment: PaymentIntent | None = None,
                               idempotency: IdempotencyHandle | None = None,
                               retries: int = 3) -> dict[str, Any]:
    """Step 3 of confirm: record what the PSP did. Safe to race with recovery (CAS)."""
    p = payment or await _reload(kassa, attempt.payment_intent_id)
    event: str
    error: CardError | None = None
    if result.outcome in (Outcome.AUTHORIZED, Outcome.CAPTURED):
        attempt.status = AttemptStatus.SUCCEEDED
        attempt.psp_reference = result.psp_reference
        captured = result.outcome is Outcome.CAPTURED
        p.authorization_succeeded(psp_reference=result.psp_reference, captured=captured)
        event = ("payment_intent.succeeded" if captured
                 else "payment_intent.amount_capturable_updated")
    elif result.outcome is Outcome.REQUIRES_ACTION:
        attempt.status = AttemptStatus.REQUIRES_ACTION
        attempt.psp_reference = result.psp_reference
        p.authorization_requires_action(psp_reference=result.psp_reference, next_action={
            "type": "redirect_to_url",
            "redirect_to_url": {"url": result.action_url, "return_url": None},
        })
        event = "payment_intent.requires_action"
    else:
        attempt.status = AttemptStatus.FAILED
        attempt.psp_reference = result.psp_reference or None
        err = decline_error(result)
        attempt.error = err
        p.authorization_failed({**err, "payment_method": {"id": p.payment_method}})
        event = "payment_intent.payment_failed"
    expected = (*OPEN, AttemptStatus.REQUIRES_ACTION)
    try:
        async with UnitOfWork(kassa, idempotency) as uow:
            uow.add(repo.op_finish_attempt(attempt, expected=expected))
            uow.add(repo.op_update_payment(p))
            if attempt.status is AttemptStatus.SUCCEEDED:
                if p.status is PaymentStatus.SUCCEEDED:
                    _post_capture(kassa, uow, p, gross=p.amount, held=None)
                else:
                    uow.add(repo.op_post_ledger(
                        ledger.authorization_hold(
                            merchant_id=p.merchant_id, psp=attempt.psp, amount=p.amount),
                        merchant_id=p.merchant_id, source_id=attempt.id))
            uow.emit(merchant_id=p.merchant_id, type=event, obj=PI(p))
            if attempt.status is AttemptStatus.FAILED:
                error = CardError(str(attempt.error and attempt.error["message"]),
                                  decline_code=result.decline_code,
                                  code=str(attempt.error and attempt.error["code"]),
                                  payment_intent=PI(p))
                await uow.commit(response=error)
            else:
                await uow.commit(response=PI(p))
    except ConcurrentModification:
        return await _after_cas_miss(kassa, attempt, result, finish_authorization,
                                     idempotency, retries)
    if error is not None:
        raise error
    return PI(p)


def _post_capture(kassa: Kassa, uow: UnitOfWork, p: PaymentIntent, *, gross: Money,
                  held: Money | None) -> None:
    assert p.psp is not None
    fee = kassa.fees.fee_for(gross)
    now = kassa.clock()
    uow.add(
        repo.op_post_ledger(
            ledger.capture(merchant_id=p.merchant_id, psp=p.psp, gross=gross, fee=fee,
                           held=held),
            merchant_id=p.merchant_id, source_id=p.id,
            hold_ref=p.latest_charge if held is not None else None),
        repo.op_insert_balance_transaction(
            bt_id=kassa.ids("balance_transaction"), merchant_id=p.merchant_id,
            amount=gross.minor, fee=fee.minor, currency=gross.currency, type="charge",
            source=p.latest_charge or p.id, status="pending",
            available_on=now + kassa.settlement_delay_seconds, created=now,
            description=p.description))


async def _after_cas_miss(kassa: Kassa, attempt: Attempt, result: PSPResult,
                          finish: Any, idempotency: IdempotencyHandle | None,
                          retries: int) -> dict[str, Any]:
    """Step 3 lost a compare-and-swap. If the attempt was recorded by someone else
    (recovery, a PSP webhook, the original request), answer with the current state; if
    only the payment row moved, the PSP's outcome must still be recorded: retry on a
    fresh read rather than drop it."""
    current = await repo.get_attempt(kassa.pool, attempt.id)
    if current is not None and current.status in (*OPEN, AttemptStatus.REQUIRES_ACTION) \
            and retries > 0:
        attempt.status = current.status
        attempt.error = None
        out: dict[str, Any] = await finish(kassa, attempt, result, idempotency=idempotency,
                                           retries=retries - 1)
        return out
    return PI(await _reload(kassa, attempt.payment_intent_id))


async def _reload(kassa: Kassa, payment_id: str) -> PaymentIntent:
    p = await repo.get_payment_unscoped(kassa.pool, payment_id)
    assert p is not None, payment_id
    return p


async def _continue_after_action(kassa: Kassa, p: PaymentIntent,
                                 idempotency: IdempotencyHandle | None) -> dict[str, Any]:
    """Re-confirm after customer authentication: ask the PSP how the attempt ended."""
    assert p.pending_attempt_id is not None
    attempt = await repo.get_attempt(kassa.pool, p.pending_attempt_id)
    assert attempt is not None
    psp = kassa.psp(attempt.psp)
    try:
        result = await psp.get_status(idempotency_key=attempt.id)
    except PSPRetryable:
        raise ConcurrentModification(
            "The payment processor is unavailable; retry the confirmation.") from None
    if result.outcome is Outcome.REQUIRES_ACTION:
        raise IllegalTransition(p.status.value, PaymentStatus.PROCESSING.value,
                                action="confirm (authentication is not complete) for")
    return await finish_authorization(kassa, attempt, result, payment=p,
                                      idempotency=idempotency)


def _took_over(idempotency: IdempotencyHandle | None) -> bool:
    return idempotency is not None and idempotency.took_over


async def _finish_orphan(kassa: Kassa, p: PaymentIntent,
                         idempotency: IdempotencyHandle | None) -> dict[str, Any]:
    """Answer a retry whose key's first holder died: finish its open attempt (if any) and
    store the resulting state as the key's response."""
    from kassa.services import recovery  # recovery imports this module

    if p.pending_attempt_id is not None:
        attempt = await repo.get_attempt(kassa.pool, p.pending_attempt_id)
        if attempt is not None and attempt.status in OPEN:
            await recovery.recover_attempt(kassa, attempt)
    current = await load(kassa, merchant_id=p.merchant_id, payment_id=p.id)
    if current.status is PaymentStatus.REQUIRES_PAYMENT_METHOD and current.last_payment_error:
        err = current.last_payment_error
        error = CardError(str(err.get("message")), decline_code=err.get("decline_code"),
                          code=str(err.get("code", "card_declined")), payment_intent=PI(current))
        async with UnitOfWork(kassa, idempotency) as uow:
            await uow.commit(response=error)
        raise error
    if current.status is not PaymentStatus.PROCESSING:
        return await _answer(kassa, current, idempotency)
    return PI(current)


# ------------------------------------------------------------------------- capture


async def capture(kassa: Kassa, *, merchant_id: str, payment_id: str,
                  amount_to_capture: int | None = None,
                  idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    p = await load(kassa, merchant_id=merchant_id, payment_id=payment_id)
    if _took_over(idempotency) and p.status is not PaymentStatus.REQUIRES_CAPTURE:
        return await _finish_orphan(kassa, p, idempotency)
    hold_ref = p.latest_charge
    attempt_id = kassa.ids("attempt")
    amount = p.start_capture(attempt_id, amount_to_capture)
    assert p.psp is not None and p.psp_reference is not None and hold_ref is not None
    attempt = Attempt(
        id=attempt_id, merchant_id=merchant_id, payment_intent_id=p.id,
        operation=Operation.CAPTURE, psp=p.psp, status=AttemptStatus.STARTED,
        amount=Money(amount, p.currency), psp_reference=p.psp_reference)
    async with UnitOfWork(kassa, idempotency) as uow:
        uow.add(repo.op_update_payment(p))
        uow.add(repo.op_insert_attempt(attempt))
        await uow.commit()
    try:
        result = await kassa.psp(p.psp).capture(
            idempotency_key=attempt.id, psp_reference=p.psp_reference, amount=attempt.amount)
    except PSPRetryable:
        return await _leave_unknown(kassa, p, attempt, idempotency)
    if result.outcome is Outcome.CAPTURE_PENDING:
        # the PSP confirms or refuses later by webhook; recovery polls if that never comes
        return await _leave_unknown(kassa, p, attempt, idempotency)
    return await finish_capture(kassa, attempt, result, payment=p, idempotency=idempotency)


async def finish_capture(kassa: Kassa, attempt: Attempt, result: PSPResult, *,
                         payment: PaymentIntent | None = None,
                         idempotency: IdempotencyHandle | None = None,
                         retries: int = 3) -> dict[str, Any]:
    if result.outcome is Outcome.CAPTURE_PENDING:  # not an outcome yet: nothing to record
        return PI(await _reload(kassa, attempt.payment_intent_id))
    p = payment or await _reload(kassa, attempt.payment_intent_id)
    error: InvalidRequest | None = None
    attempt.psp_reference = result.psp_reference or attempt.psp_reference
    if result.outcome is Outcome.CAPTURED:
        attempt.status = AttemptStatus.SUCCEEDED
        p.capture_succeeded(attempt.amount.minor)
    else:
        attempt.status = AttemptStatus.FAILED
        attempt.error = {"message": result.message or "The capture was refused by the processor.",
                         "code": result.decline_code or "capture_failed"}
        p.capture_failed()
        error = InvalidRequest(str(attempt.error["message"]), code="capture_failed")
    try:
        async with UnitOfWork(kassa, idempotency) as uow:
            uow.add(repo.op_finish_attempt(attempt, expected=OPEN))
            uow.add(repo.op_update_payment(p))
            if error is None:
                _post_capture(kassa, uow, p, gross=attempt.amount, held=p.amount)
                uow.emit(merchant_id=p.merchant_id, type="payment_intent.succeeded", obj=PI(p))
                await uow.commit(response=PI(p))
            else:
                await uow.commit(response=error)
    except ConcurrentModification:
        return await _after_cas_miss(kassa, attempt, result, finish_capture, idempotency,
                                     retries)
    if error is not None:
        raise error
    return PI(p)


# ------------------------------------------------------------------------- cancel


async def cancel(kassa: Kassa, *, merchant_id: str, payment_id: str,
                 cancellation_reason: str | None = None,
                 idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    p = await load(kassa, merchant_id=merchant_id, payment_id=payment_id)
    if _took_over(idempotency) and p.status in (PaymentStatus.PROCESSING,
                                                PaymentStatus.CANCELED):
        return await _finish_orphan(kassa, p, idempotency)
    open_action = p.pending_attempt_id if p.status is PaymentStatus.REQUIRES_ACTION else None
    needs_void = p.cancel(reason=cancellation_reason, now=kassa.clock())
    if not needs_void:
        async with UnitOfWork(kassa, idempotency) as uow:
            if open_action is not None:
                abandoned = Attempt(
                    id=open_action, merchant_id=merchant_id, payment_intent_id=p.id,
                    operation=Operation.AUTHORIZE, psp=p.psp or "", amount=p.amount,
                    status=AttemptStatus.FAILED,
                    error={"code": "payment_intent_canceled", "message": "Canceled."},
                    psp_reference=p.psp_reference)
                uow.add(repo.op_finish_attempt(abandoned,
                                               expected=(AttemptStatus.REQUIRES_ACTION,)))
            p.pending_attempt_id = None
            uow.add(repo.op_update_payment(p))
            uow.emit(merchant_id=merchant_id, type="payment_intent.canceled", obj=PI(p))
            await uow.commit(response=PI(p))
        return PI(p)
    assert p.psp is not None and p.psp_reference is not None
    attempt = Attempt(
        id=kassa.ids("attempt"), merchant_id=merchant_id, payment_intent_id=p.id,
        operation=Operation.VOID, psp=p.psp, status=AttemptStatus.STARTED,
        amount=Money(p.amount_capturable, p.currency), psp_reference=p.psp_reference)
    p.start_void(attempt.id)
    async with UnitOfWork(kassa, idempotency) as uow:
        uow.add(repo.op_update_payment(p))
        uow.add(repo.op_insert_attempt(attempt))
        await uow.commit()
    try:
        result = await kassa.psp(p.psp).void(idempotency_key=attempt.id,
                                            psp_reference=p.psp_reference)
    except PSPRetryable:
        return await _leave_unknown(kassa, p, attempt, idempotency)
    return await finish_void(kassa, attempt, result, payment=p, idempotency=idempotency)


async def finish_void(kassa: Kassa, attempt: Attempt, result: PSPResult, *,
                      payment: PaymentIntent | None = None,
                      idempotency: IdempotencyHandle | None = None,
                      retries: int = 3) -> dict[str, Any]:
    p = payment or await _reload(kassa, attempt.payment_intent_id)
    error: InvalidRequest | None = None
    if result.outcome is Outcome.VOIDED:
        attempt.status = AttemptStatus.SUCCEEDED
        p.void_succeeded(now=kassa.clock())
    else:
        attempt.status = AttemptStatus.FAILED
        attempt.error = {"message": result.message or "The processor refused to void.",
                         "code": "void_failed"}
        p.capture_failed()  # back to requires_capture: the hold is still there
        p.cancellation_reason = None
        error = InvalidRequest(str(attempt.error["message"]), code="void_failed")
    try:
        async with UnitOfWork(kassa, idempotency) as uow:
            uow.add(repo.op_finish_attempt(attempt, expected=OPEN))
            uow.add(repo.op_update_payment(p))
            if error is None:
                assert p.latest_charge is not None
                uow.add(repo.op_post_ledger(
                    ledger.authorization_release(
                        merchant_id=p.merchant_id, psp=attempt.psp, held=p.amount),
                    merchant_id=p.merchant_id, source_id=p.latest_charge,
                    hold_ref=p.latest_charge))
                uow.emit(merchant_id=p.merchant_id, type="payment_intent.canceled", obj=PI(p))
                await uow.commit(response=PI(p))
            else:
                await uow.commit(response=error)
    except ConcurrentModification:
        return await _after_cas_miss(kassa, attempt, result, finish_void, idempotency, retries)
    if error is not None:
        raise error
    return PI(p)


async def retrieve(kassa: Kassa, *, merchant_id: str, payment_id: str) -> dict[str, Any]:
    return PI(await load(kassa, merchant_id=merchant_id, payment_id=payment_id))


async def list_(kassa: Kassa, *, merchant_id: str, limit: int, starting_after: str | None,
                ending_before: str | None) -> tuple[list[dict[str, Any]], bool]:
    items, more = await repo.list_payments(kassa.pool, merchant_id=merchant_id, limit=limit,
                                           starting_after=starting_after,
                                           ending_before=ending_before)
    return [PI(p) for p in items], more
