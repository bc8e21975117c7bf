"""Finish sagas whose process died or whose PSP call timed out (ARCHITECTURE §3).

For each open attempt the PSP is asked what happened to the attempt's idempotency key.
If the PSP never saw it, the call is sent again with the same key: declaring it failed
instead would race with the original request still on its way to the PSP, while a repeat
is deduplicated against it by the PSP. The outcome is then recorded by the same step-3
functions the request path uses.
"""

from __future__ import annotations

import logging

from kassa.db import repositories as repo
from kassa.db.repositories import Attempt
from kassa.domain.payments import Operation
from kassa.psp.base import AuthorizeRequest, Outcome, PSPResult, PSPRetryable, UnknownOperation
from kassa.services import payments, refunds
from kassa.services.context import Kassa

log = logging.getLogger(__name__)


async def _ask_psp(kassa: Kassa, attempt: Attempt) -> PSPResult | None:
    psp = kassa.psp(attempt.psp)
    try:
        return await psp.get_status(idempotency_key=attempt.id)
    except UnknownOperation:
        pass
    except PSPRetryable:
        return None  # still unreachable: try again on the next pass
    # The PSP never received the call, so repeating it with the same key is safe.
    ref = attempt.psp_reference or ""
    try:
        if attempt.operation is Operation.AUTHORIZE:
            return await _repeat_authorization(kassa, attempt)
        if attempt.operation is Operation.CAPTURE:
            return await psp.capture(idempotency_key=attempt.id, psp_reference=ref,
                                     amount=attempt.amount)
        if attempt.operation is Operation.VOID:
            return await psp.void(idempotency_key=attempt.id, psp_reference=ref)
        return await psp.refund(idempotency_key=attempt.id, psp_reference=ref,
                                amount=attempt.amount)
    except PSPRetryable:
        return None


async def _repeat_authorization(kassa: Kassa, attempt: Attempt) -> PSPResult:
    p = await repo.get_payment_unscoped(kassa.pool, attempt.payment_intent_id)
    assert p is not None
    card = None
    if p.payment_method is not None:
        card = await kassa.payment_methods.resolve(merchant_id=p.merchant_id,
                                                   payment_method=p.payment_method)
    if card is None:  # the card is gone: nothing was charged, nothing can be
        return PSPResult(Outcome.DECLINED, "", decline_code="processing_error",
                         message="The payment could not be completed; please retry.")
    return await kassa.psp(attempt.psp).authorize(AuthorizeRequest(
        idempotency_key=attempt.id, amount=attempt.amount, card=card, capture=attempt.capture,
        merchant_id=p.merchant_id, description=p.description))


async def recover_attempt(kassa: Kassa, attempt: Attempt) -> bool:
    """Resolve one open attempt; True when its outcome was recorded."""
    result = await _ask_psp(kassa, attempt)
    if result is None or result.outcome is Outcome.CAPTURE_PENDING:
        return False  # still open at the PSP: ask again on a later pass (or its webhook)
    try:
        if attempt.operation is Operation.AUTHORIZE:
            await payments.finish_authorization(kassa, attempt, result)
        elif attempt.operation is Operation.CAPTURE:
            await payments.finish_capture(kassa, attempt, result)
        elif attempt.operation is Operation.VOID:
            await payments.finish_void(kassa, attempt, result)
        else:
            await refunds.finish_refund(kassa, attempt, result)
    except Exception as exc:  # a decline surfaces as CardError: recorded, not a failure
        from kassa.domain.errors import KassaError

        if not isinstance(exc, KassaError):
            raise
    log.info("recovered attempt %s (%s): %s", attempt.id, attempt.operation, result.outcome)
    return True


async def recover_open_attempts(kassa: Kassa, *, limit: int = 100) -> int:
    """One pass of the recovery worker; returns how many attempts were resolved."""
    async with kassa.pool.acquire() as conn:
        claimed = await repo.claim_open_attempts(conn, older_than_s=kassa.recovery_after_seconds,
                                                 limit=limit)
    done = 0
    for attempt in claimed:
        try:
            if await recover_attempt(kassa, attempt):
                done += 1
        except Exception:
            log.exception("recovery of attempt %s failed; will retry", attempt.id)
    return done
