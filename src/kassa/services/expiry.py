"""Deadlines of the states that wait: an authentication the customer never completed, and
an authorisation hold never captured. Both end with a void at the PSP (cancel.py), so
nothing stays held or completable there that kassa's books do not show.

- 3-D Secure left open past ``action_expiry_seconds`` (KASSA_ACTION_EXPIRY_SECONDS): voided;
  the intent goes back to ``requires_payment_method`` with ``last_payment_error``
  ``payment_intent_authentication_failure`` (Stripe's behaviour).
- A hold past the PSP's validity window (7 days by default, like Stripe's card
  authorisations): voided, the ledger hold released, ``canceled`` with
  ``cancellation_reason: "automatic"`` and ``payment_intent.canceled``.
- A hold past that window whose capture or void is still unresolved (``processing``: the
  PSP accepted it and never said how it ended, or recovery gave up asking): the PSP is
  asked again, first about that operation, then about the authorisation itself. What it
  shows is recorded by the operation's own finisher (so once: the finisher's
  compare-and-swap and the ledger's hold_ref): captured records the capture; expired or
  void with nothing captured releases the hold and cancels (``automatic``). A PSP that
  cannot say (Adyen reads nothing back) is never guessed for: the operation is flagged
  ``needs_attention`` (``hold_expired_unresolved``) for an operator, and the hold stays
  on the books until the PSP's notification or an operator settles it.
"""

from __future__ import annotations

import logging

from kassa.db import payments as payments_db
from kassa.domain.errors import KassaError
from kassa.domain.payments import (
    OPEN_ATTEMPT,
    Attempt,
    AttemptStatus,
    Operation,
    PaymentIntent,
    PaymentStatus,
    VoidPurpose,
)
from kassa.psp.base import Outcome, PSPError, PSPResult
from kassa.services import cancel, hold_validity, saga
from kassa.services.context import Kassa

log = logging.getLogger(__name__)

# the flag on a capture or void still unresolved when its authorisation's validity ended
HOLD_EXPIRED_UNRESOLVED = "hold_expired_unresolved"
# what an authorisation that lapsed at the PSP answers (nothing was captured)
LAPSED = frozenset({"authorization_expired", "expired_authorization"})


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
    flagged = False
    if p.latest_charge == attempt.id and p.status is PaymentStatus.PROCESSING \
            and p.pending_attempt_id not in (None, attempt.id) \
            and kassa.clock() >= attempt.created + await hold_validity.seconds(kassa,
                                                                              attempt.psp):
        flagged = await _settle_stuck(kassa, attempt, p)
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
    # until the hold is captured or released, keep looking (a void in flight may fail;
    # a flagged one may still be settled by the PSP's notification or a later answer)
    delay = None if done else kassa.watch.backoff_cap_seconds if flagged else \
        kassa.watch.backoff(kassa.recovery_after_seconds or 1.0, attempt.tries)
    async with kassa.pool.acquire() as conn:
        await payments_db.reschedule_attempt(conn, attempt, count_try=not done,
                                             delay_s=delay)
    if flagged and not done:
        return "needs_attention"
    return "expired" if done and held else "released" if done else "unresolved"


async def _settle_stuck(kassa: Kassa, charge: Attempt, p: PaymentIntent) -> bool:
    """The hold's validity is over and the payment's capture or void is unresolved: ask
    the PSP, record what it shows through that operation's finisher. Returns True when
    the PSP could not say and the operation is flagged for an operator."""
    assert p.pending_attempt_id is not None
    stuck = await payments_db.get_attempt(kassa.pool, p.pending_attempt_id)
    waiting = (*OPEN_ATTEMPT, AttemptStatus.PENDING)
    if stuck is None or stuck.operation not in (Operation.CAPTURE, Operation.VOID) \
            or stuck.status not in waiting:
        return False
    # the operation's own answer first (a lookup, or its repeat under the same key)
    await saga.resolve(kassa, stuck)
    stuck = await payments_db.get_attempt(kassa.pool, stuck.id)
    if stuck is None or stuck.status not in waiting:
        return False  # recorded (by that answer, or a notification meanwhile)
    # then the authorisation itself: the PSP lets it lapse at its validity
    try:
        shown: PSPResult | None = await kassa.psp(charge.psp).lookup(saga.attempt_ref(charge))
    except PSPError as exc:
        log.warning("%s cannot say how authorisation %s ended: %s", charge.psp, charge.id,
                    exc)
        shown = None
    result = _verdict(stuck, shown)
    if result is None:
        if shown is not None and shown.outcome is Outcome.AUTHORIZED:
            return False  # still held at the PSP (its validity is longer): look again
        await _flag(kassa, stuck, charge, shown)
        return True
    try:
        await saga.finish(kassa, stuck, result)
    except KassaError:
        pass  # a refused capture is recorded, and that is the answer
    return False


def _verdict(stuck: Attempt, shown: PSPResult | None) -> PSPResult | None:
    """What the authorisation's state at the PSP says of the stuck operation, as the
    result its finisher records; None when it says nothing certain."""
    if shown is None:
        return None
    ref = stuck.psp_reference or ""
    gone = shown.outcome is Outcome.VOIDED or (
        shown.decline_code in LAPSED and shown.outcome in (Outcome.DECLINED, Outcome.FAILED))
    if gone:
        # void or lapsed at the PSP, so nothing of it was captured: the hold is released
        if stuck.operation is Operation.VOID:
            return PSPResult(Outcome.VOIDED, psp_reference=ref)
        return PSPResult(Outcome.FAILED, psp_reference=ref,
                         decline_code="authorization_expired",
                         message=shown.message or "The authorization expired before the "
                                                  "capture was confirmed.")
    if shown.outcome is Outcome.CAPTURED and stuck.operation is Operation.CAPTURE \
            and shown.amount is not None:
        return PSPResult(Outcome.CAPTURED, psp_reference=ref, amount=shown.amount)
    return None  # captured while kassa voided, or a state kassa cannot read: an operator's


async def _flag(kassa: Kassa, stuck: Attempt, charge: Attempt,
                shown: PSPResult | None) -> None:
    said = "cannot say" if shown is None else f"answers {shown.outcome.value}"
    note = (f"the authorisation {charge.id} of {stuck.payment_intent_id} is past its hold "
            f"validity and its {stuck.operation.value} {stuck.id} is still unresolved; "
            f"{charge.psp} {said} whether anything was captured. The hold stays on the "
            "ledger: check the payment at the PSP (its notification still settles it)")
    log.error("attempt %s needs attention: %s", stuck.id, note)
    async with kassa.pool.acquire() as conn:
        await payments_db.flag_attempt(conn, stuck.id, note=note,
                                       recheck_s=kassa.watch.backoff_cap_seconds,
                                       code=HOLD_EXPIRED_UNRESOLVED)


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
