"""Step 2 of an authorisation with failover: call the routed account; only when it provably
did not process the attempt (PSPUnavailable: connection refused, DNS, a status the PSP
documents as "not processed") move the payment to the next eligible account.

Never after a decline or a refusal (those are the answer), never after an unknown outcome
(timeout, 5xx, reset after sending: the PSP may have charged; recovery resolves that
attempt at the same PSP). Each PSP call is its own attempt row (and charge): the first is
recorded ``failed`` with ``psp_unavailable``, the next one is inserted ``started`` — in one
transaction with the payment's move, so there is never a moment where the payment points at
an attempt that nobody watches.

The one race that could charge twice is recovery repeating the first attempt's call at its
PSP (it presumes a ``started`` attempt orphaned after ``recovery_after_seconds``) while this
request sends the payment elsewhere. The CAS that closes the first attempt
(``fail_over_attempt`` in db/sql/apply.sql) holds only while recovery has never claimed it;
if it has, the payment stays with that attempt and recovery resolves it at its PSP.
"""

from __future__ import annotations

import logging
from typing import Any

from kassa import representations
from kassa.db import ops
from kassa.db import payments as payments_db
from kassa.domain.charges import CardFacts
from kassa.domain.errors import ConcurrentModification
from kassa.domain.payments import OPEN_ATTEMPT, Attempt, AttemptStatus, Operation, PaymentIntent
from kassa.domain.routing import Decision
from kassa.psp.base import Card, PSPRefused, PSPRetryable, PSPUnavailable
from kassa.services import charges, saga
from kassa.services.context import Kassa
from kassa.services.uow import IdempotencyHandle, UnitOfWork

log = logging.getLogger(__name__)
PI = representations.payment_intent


def unavailable_error(attempt: Attempt, target: str, exc: Exception) -> dict[str, Any]:
    """The closed attempt's error: what its charge shows in the payment's history."""
    return {"type": "api_error", "code": "psp_unavailable",
            "message": f"The payment processor {attempt.psp} could not be reached; the "
                       f"attempt was not processed there and went to {target}.",
            "detail": str(exc)[:200]}


async def authorize(kassa: Kassa, attempt: Attempt, p: PaymentIntent, card: Card,
                    decision: Decision, facts: CardFacts | None, *,
                    idempotency: IdempotencyHandle | None) -> dict[str, Any]:
    """Steps 2 and 3 for an authorisation that step 1 committed at ``decision.psps[0]``."""
    tried = [attempt.psp]
    while True:
        request = saga.authorize_request(kassa, attempt, p, card)
        try:
            result = await kassa.psp(attempt.psp).authorize(request)
        except PSPUnavailable as exc:
            target = kassa.router.fallback(decision, tried)
            if target is None:  # nowhere else: recovery repeats it here with the same key
                log.info("%s authorize %s: unavailable, no other account (%s)", attempt.psp,
                         attempt.id, exc)
                return await saga.leave_unknown(kassa, attempt, PI(p), idempotency)
            moved = await _move(kassa, p, attempt, target, facts, idempotency, exc)
            if moved is None:
                return await _left_to_recovery(kassa, attempt, idempotency)
            log.warning("%s authorize %s: unavailable, failed over to %s as %s (%s)",
                        attempt.psp, attempt.id, target, moved.id, exc)
            kassa.router.failed_over(attempt.psp, target, "unavailable")
            attempt = moved
            tried.append(target)
            continue
        except PSPRefused as exc:
            log.warning("%s refused authorize %s: %s", attempt.psp, attempt.id, exc)
            result = saga.refused(attempt, exc)
        except PSPRetryable as exc:
            log.info("%s authorize %s: outcome unknown (%s)", attempt.psp, attempt.id, exc)
            return await saga.leave_unknown(kassa, attempt, PI(p), idempotency)
        return await saga.finish(kassa, attempt, result, payment=p, idempotency=idempotency)


async def _move(kassa: Kassa, p: PaymentIntent, attempt: Attempt, target: str,
                facts: CardFacts | None, idempotency: IdempotencyHandle | None,
                exc: Exception) -> Attempt | None:
    """Close ``attempt`` and start the payment's next attempt at ``target``, atomically.
    None when the first attempt was no longer only started (recovery claimed it)."""
    nxt = Attempt(id=kassa.ids("charge"), merchant_id=p.merchant_id, payment_intent_id=p.id,
                  operation=Operation.AUTHORIZE, psp=target, status=AttemptStatus.STARTED,
                  amount=attempt.amount, capture=attempt.capture,
                  return_url=attempt.return_url)
    before = (p.pending_attempt_id, p.latest_charge, p.psp, p.version)
    p.pending_attempt_id = nxt.id
    p.latest_charge = nxt.id
    p.psp = target
    try:
        async with UnitOfWork(kassa, idempotency) as uow:
            uow.add(ops.FailOverAttempt(attempt.id, unavailable_error(attempt, target, exc),
                                        kassa.recovery_after_seconds))
            uow.add(ops.UpdatePayment.of(p))
            saga.begin(kassa, uow, nxt, idempotency)
            nxt.charge = charges.details_for(kassa, nxt, p, facts)
            uow.add(ops.InsertCharge(nxt.charge))
            await uow.commit()
    except ConcurrentModification:
        p.pending_attempt_id, p.latest_charge, p.psp, p.version = before
        log.warning("authorize %s at %s: not failed over, recovery has the attempt",
                    attempt.id, attempt.psp)
        return None
    attempt.status = AttemptStatus.FAILED
    return nxt


async def _left_to_recovery(kassa: Kassa, attempt: Attempt,
                            idempotency: IdempotencyHandle | None) -> dict[str, Any]:
    """Recovery claimed the attempt first: it resolves it at its own PSP. The answer is
    the payment as it is now (processing, or what recovery already recorded)."""
    current = await payments_db.get_attempt(kassa.pool, attempt.id)
    if current is None or current.status in OPEN_ATTEMPT:
        now = await saga.reload(kassa, attempt.payment_intent_id)
        return await saga.leave_unknown(kassa, attempt, PI(now), idempotency)
    return await saga.answer_recorded(kassa, current, idempotency)
