"""Recovery: every attempt that waits is looked at until it ends (ARCHITECTURE §3).

Attempts carry ``next_check_at``; a pass claims the due ones under a lease that covers the
work (so other replicas do not take them while they are worked), handles them
concurrently, and schedules the next look:

- open (``started``/``unknown``; a process died or the PSP did not answer): the PSP is
  asked what happened to the attempt's key; a call it never received is repeated with the
  same key (saga.resolve). Unresolved looks back off; after ``max_tries`` the attempt is
  ``needs_attention`` (``kassa attempts list --stuck``, counted in the log) and is still
  looked at, at the backoff cap, so a PSP that comes back settles it.
- ``pending`` capture or refund: polled the same way until the PSP says how it ended.
- ``requires_action`` (3-D Secure): polled until the customer's outcome is known; past
  ``action_expiry_seconds`` it is voided (expiry.py).
- a ``succeeded`` authorisation that is still only a hold: at the PSP's validity deadline
  it is voided and the hold released (expiry.py).

Each look reports what really happened (recorded, recorded elsewhere, unresolved,
needs_attention, expired, released); only ``recorded``/``expired`` count as done.
"""

from __future__ import annotations

import asyncio
import logging
import time

from kassa.db import payments as payments_db
from kassa.domain.payments import (
    OPEN_ATTEMPT,
    Attempt,
    AttemptStatus,
    Operation,
    PaymentStatus,
)
from kassa.services import expiry, saga
from kassa.services.context import Kassa

log = logging.getLogger(__name__)

CONCURRENCY = 16  # attempts looked at together in one pass


async def look(kassa: Kassa, attempt: Attempt) -> str:
    """One look at a claimed attempt; returns what happened."""
    watch = kassa.watch
    if attempt.status is AttemptStatus.SUCCEEDED and attempt.operation is Operation.AUTHORIZE:
        return await expiry.expire_hold(kassa, attempt)
    if attempt.operation is Operation.AUTHORIZE and await _holds_again(kassa, attempt):
        # a hold posted again after a rejected capture (capture.reverse), on a charge whose
        # attempt is not `succeeded` (flagged for an operator): its deadline is still the
        # hold's, never a resolve of an authorisation that is recorded already
        return await expiry.expire_hold(kassa, attempt)
    if attempt.status is AttemptStatus.REQUIRES_ACTION:
        deadline = attempt.created + watch.action_expiry_seconds
        if time.time() >= deadline:
            return await expiry.expire_authentication(kassa, attempt)
        verdict = await saga.resolve(kassa, attempt)
        if verdict == "unresolved":
            delay = min(watch.backoff(watch.action_poll_seconds, attempt.tries),
                        max(1.0, deadline - time.time()))
            await _reschedule(kassa, attempt, delay, give_up=False)
        return verdict
    if attempt.status in (*OPEN_ATTEMPT, AttemptStatus.PENDING):
        verdict = await saga.resolve(kassa, attempt)
        if verdict == "unresolved":
            first = watch.pending_poll_seconds if attempt.status is AttemptStatus.PENDING \
                else max(kassa.recovery_after_seconds, 1.0)
            status = await _reschedule(kassa, attempt, watch.backoff(first, attempt.tries),
                                       give_up=True)
            if status is AttemptStatus.NEEDS_ATTENTION:
                return "needs_attention"
        return verdict
    # nothing to wait for any more (recorded while it was due): stop watching it
    async with kassa.pool.acquire() as conn:
        await payments_db.reschedule_attempt(conn, attempt, delay_s=None, count_try=False)
    return "recorded_elsewhere"


async def _holds_again(kassa: Kassa, attempt: Attempt) -> bool:
    if attempt.status in (AttemptStatus.SUCCEEDED, AttemptStatus.REQUIRES_ACTION,
                          AttemptStatus.FAILED):
        return False
    p = await payments_db.get_payment_unscoped(kassa.pool, attempt.payment_intent_id)
    return p is not None and p.latest_charge == attempt.id and p.hold_ref is not None \
        and p.status in (PaymentStatus.REQUIRES_CAPTURE, PaymentStatus.PROCESSING) \
        and p.pending_attempt_id != attempt.id


async def _reschedule(kassa: Kassa, attempt: Attempt, delay: float, *,
                      give_up: bool) -> AttemptStatus | None:
    watch = kassa.watch
    if attempt.status is AttemptStatus.NEEDS_ATTENTION:
        delay = watch.backoff_cap_seconds
    async with kassa.pool.acquire() as conn:
        status = await payments_db.reschedule_attempt(
            conn, attempt, delay_s=delay, count_try=True,
            give_up_after=watch.max_tries if give_up else None,
            note=f"no outcome from {attempt.psp} after {watch.max_tries} looks")
    if status is AttemptStatus.NEEDS_ATTENTION and attempt.status is not status:
        log.error("attempt %s (%s %s at %s) needs attention: recovery could not learn its "
                  "outcome after %d looks", attempt.id, attempt.operation.value,
                  attempt.payment_intent_id, attempt.psp, watch.max_tries)
    return status


async def recover_open_attempts(kassa: Kassa, *, limit: int = CONCURRENCY) -> int:
    """One pass of the recovery worker; returns how many attempts it settled."""
    async with kassa.pool.acquire() as conn:
        claimed = await payments_db.claim_due_attempts(conn, lease_s=kassa.watch.lease_seconds,
                                                       limit=limit)
    if not claimed:
        return 0

    async def one(attempt: Attempt) -> str:
        try:
            verdict = await look(kassa, attempt)
        except Exception:
            log.exception("looking at attempt %s failed; it is looked at again after its "
                          "lease", attempt.id)
            return "error"
        log.info("attempt %s (%s, %s): %s", attempt.id, attempt.operation.value,
                 attempt.status.value, verdict)
        return verdict

    verdicts = await asyncio.gather(*(one(a) for a in claimed))
    done = sum(v in ("recorded", "expired") for v in verdicts)
    stuck = sum(v == "needs_attention" for v in verdicts)
    if stuck:
        async with kassa.pool.acquire() as conn:
            total = await payments_db.count_stuck_attempts(conn)
        log.error("recovery: %d attempt(s) need attention (%d in all)", stuck, total)
    return done
