"""Deadlines of the states that wait: an authentication the customer never completed, and
an authorisation hold never captured. Both end with a void at the PSP (cancel.py), so
nothing stays held or completable there that kassa's books do not show.

- 3-D Secure left open past ``action_expiry_seconds`` (KASSA_ACTION_EXPIRY_SECONDS): voided;
  the intent goes back to ``requires_payment_method`` with ``last_payment_error``
  ``payment_intent_authentication_failure`` (Stripe's behaviour).
- A hold past the PSP's validity window (7 days by default, like Stripe's card
  authorisations): voided, the ledger hold released, ``canceled`` with
  ``cancellation_reason: "automatic"`` and ``payment_intent.canceled``.
"""

from __future__ import annotations

from kassa.db import payments as payments_db
from kassa.domain.errors import KassaError
from kassa.domain.payments import Attempt, PaymentStatus, VoidPurpose
from kassa.services import cancel, saga
from kassa.services.context import Kassa


async def expire_authentication(kassa: Kassa, attempt: Attempt) -> str:
    p = await saga.reload(kassa, attempt.payment_intent_id)
    if p.status is PaymentStatus.REQUIRES_ACTION and p.pending_attempt_id == attempt.id:
        try:
            await cancel.void(kassa, p, VoidPurpose.ACTION_EXPIRED, None)
        except KassaError:
            pass  # refused: the customer may have completed first (recorded if so)
    # until the void is recorded (it marks this attempt failed, or the customer's outcome
    # is), look again: a void whose answer was lost is resolved by its own attempt
    return await _settled_or_again(kassa, attempt, "expired")


async def expire_hold(kassa: Kassa, attempt: Attempt) -> str:
    # due means the deadline passed: finish_authorization set it from the authorisation's
    # start and the PSP's validity; a look that raced a finisher cannot move it
    # (reschedule_attempt only touches the attempt as that look saw it)
    p = await saga.reload(kassa, attempt.payment_intent_id)
    held = p.latest_charge == attempt.id and p.status is PaymentStatus.REQUIRES_CAPTURE
    if held:
        try:
            await cancel.void(kassa, p, VoidPurpose.HOLD_EXPIRED, None)
        except KassaError:
            pass  # refused: still held, looked at again below
    p = await saga.reload(kassa, attempt.payment_intent_id)
    done = p.latest_charge != attempt.id or p.status in (PaymentStatus.SUCCEEDED,
                                                         PaymentStatus.CANCELED)
    # until the hold is captured or released, keep looking (a void in flight may fail)
    async with kassa.pool.acquire() as conn:
        await payments_db.reschedule_attempt(
            conn, attempt, count_try=not done,
            delay_s=None if done else kassa.watch.backoff(kassa.recovery_after_seconds or 1.0,
                                                          attempt.tries))
    return "expired" if done and held else "released" if done else "unresolved"


async def _settled_or_again(kassa: Kassa, attempt: Attempt, verdict: str) -> str:
    current = await payments_db.get_attempt(kassa.pool, attempt.id)
    if current is not None and current.status is attempt.status:
        async with kassa.pool.acquire() as conn:
            await payments_db.reschedule_attempt(
                conn, attempt, count_try=True,
                delay_s=kassa.watch.backoff(kassa.recovery_after_seconds or 1.0,
                                            attempt.tries))
        return "unresolved"
    return verdict
