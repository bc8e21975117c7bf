"""Inbound PSP webhooks, the use case (``api/routers/psp_webhooks.py`` is its door, the
inbox's SQL is db/psp_inbox.py): verify and store them (``receive``, answering at once), then
apply each exactly once, in order per PSP object (``apply_pending``, the psp-webhooks worker).

Guarantees, and what provides them:

- A forged, unsigned or replayed delivery changes nothing: the adapter verifies the
  signature over the raw body and the timestamp tolerance before anything is stored.
- A duplicate delivery changes nothing: the inbox is unique on (psp, PSP event id).
- An event is applied at most once: a worker claims it with ``FOR UPDATE SKIP LOCKED`` and
  marks it done in the transaction that applies it (disputes, refunds); a capture outcome
  is recorded by the payment saga's own step 3, whose compare-and-swap on the attempt
  lets exactly one writer (this worker, recovery or the request itself) record it.
- Stale events are ignored: each event names its PSP object and its sequence in that
  object's history; one at or below the highest sequence applied for the object is
  stale, and the state machines refuse moves backwards (``refund.succeeded`` after
  ``refund.failed``, ``created`` after ``closed``).
- An event that builds on something kassa has not recorded yet (a refund outcome before
  the refund call's own answer, a dispute before its capture) is deferred with backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from kassa.db import disputes as disputes_db
from kassa.db import ops, psp_inbox
from kassa.db import payments as payments_db
from kassa.db import refunds as refunds_db
from kassa.domain.errors import IllegalTransition, InvalidRequest, KassaError, NotFound
from kassa.domain.payments import (
    OPEN_ATTEMPT,
    Attempt,
    AttemptStatus,
    Operation,
    PaymentStatus,
    RefundStatus,
)
from kassa.psp.base import Outcome, PSPEvent, PSPEventType, PSPResult, WebhookRejected
from kassa.services import capture, disputes, refunds, saga
from kassa.services.context import Kassa
from kassa.services.disputes import Deferred
from kassa.services.uow import UnitOfWork

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 30  # then the event is `failed`, kept for an operator
MAX_BACKOFF_S = 300.0

Verdict = tuple[str, str | None]  # (inbox status, note)


def backoff(attempts: int) -> float:
    return min(MAX_BACKOFF_S, 0.5 * float(2 ** min(attempts, 20)))


async def receive(kassa: Kassa, *, psp: str, headers: Mapping[str, str], body: bytes
                  ) -> dict[str, Any]:
    """Verify a delivery and store its events; duplicates are acknowledged and dropped."""
    adapter = kassa.psps.get(psp)
    if adapter is None:
        raise NotFound(f"No such PSP: '{psp}'", param="psp")
    try:
        events = await adapter.parse_webhook(headers=headers, body=body, now=kassa.clock())
    except WebhookRejected as exc:
        log.warning("refused a %s webhook: %s", psp, exc)
        raise InvalidRequest(f"Webhook refused: {exc}.",
                             code="webhook_signature_invalid") from None
    new = await psp_inbox.insert_events(kassa.pool, events)
    return {"received": True, "events": len(events), "duplicates": len(events) - new}


async def apply_pending(kassa: Kassa, *, limit: int = 100) -> int:
    """One pass of the psp-webhooks worker: apply up to ``limit`` due events."""
    done = 0
    while done < limit and await apply_next(kassa) is not None:
        done += 1
    return done


async def apply_next(kassa: Kassa) -> str | None:
    """Claim the oldest due event and apply it; returns what became of it (applied,
    ignored, failed, deferred, error), or None when nothing is due."""
    claimed: psp_inbox.InboxEvent | None = None
    try:
        async with UnitOfWork(kassa) as uow:
            conn = await uow.connection()
            claimed = await psp_inbox.claim_next_event(conn)
            if claimed is None:
                return None
            event = claimed.event
            # the object's row lock also serialises workers holding events about it
            last = await psp_inbox.lock_object_version(conn, psp=event.psp,
                                                       object_ref=event.object_ref)
            status: str
            note: str | None
            if event.sequence <= last:
                status, note = "ignored", (f"stale: sequence {event.sequence}, "
                                           f"{last} already applied")
            else:
                try:
                    async with conn.transaction():  # a savepoint: a deferral writes nothing
                        status, note = await _apply(kassa, uow, event)
                except Deferred as deferred:
                    status = await psp_inbox.defer_event(
                        conn, inbox_id=claimed.id, delay_s=backoff(claimed.attempts),
                        result=f"deferred: {deferred}", max_attempts=MAX_ATTEMPTS)
                    await uow.commit(side_effects=False)
                    return "deferred" if status == "pending" else status
                if status == "applied":
                    await psp_inbox.set_object_version(conn, psp=event.psp,
                                                       object_ref=event.object_ref,
                                                       sequence=event.sequence)
            await psp_inbox.finish_event(conn, inbox_id=claimed.id, status=status, result=note)
            await uow.commit(side_effects=False)
        log.info("psp event %s %s (%s #%d): %s%s", event.event_id, event.type.value,
                 event.object_ref, event.sequence, status, f" ({note})" if note else "")
        return status
    except Exception as exc:
        if claimed is None:
            raise
        # Rolled back (e.g. a compare-and-swap lost to a concurrent change): count the
        # attempt and try again later in a fresh transaction.
        log.warning("applying psp event %s failed; will retry", claimed.event.event_id,
                    exc_info=True)
        await psp_inbox.defer_event(kassa.pool, inbox_id=claimed.id,
                                    delay_s=backoff(claimed.attempts),
                                    result=f"error: {type(exc).__name__}: {exc}",
                                    max_attempts=MAX_ATTEMPTS)
        return "error"


async def _apply(kassa: Kassa, uow: UnitOfWork, event: PSPEvent) -> Verdict:
    if event.type is PSPEventType.AUTHORIZATION_UPDATED:
        return await _authorization_outcome(kassa, event)
    if event.type in (PSPEventType.CAPTURE_SUCCEEDED, PSPEventType.CAPTURE_FAILED):
        return await _capture_outcome(kassa, uow, event)
    if event.type in (PSPEventType.VOID_SUCCEEDED, PSPEventType.VOID_FAILED):
        return await _void_outcome(kassa, event)
    if event.type in (PSPEventType.REFUND_SUCCEEDED, PSPEventType.REFUND_FAILED):
        return await _refund_outcome(kassa, uow, event)
    return await disputes.apply_psp_event(kassa, uow, event)


async def _record(kassa: Kassa, attempt: Attempt, result: PSPResult) -> Verdict:
    """Record an outcome through the operation's finisher (its own transaction, exactly
    as the request or recovery would), then check it is recorded."""
    before = attempt.status
    try:
        await saga.finish(kassa, attempt, result)
    except IllegalTransition as exc:
        return "ignored", f"stale: {exc.message}"
    except KassaError:
        pass  # a refused operation or a decline is recorded, then reported as an error
    current = await payments_db.get_attempt(kassa.pool, attempt.id)
    assert current is not None
    if current.status is before:
        raise RuntimeError(f"attempt {attempt.id} is still {before.value}")
    return "applied", None


async def _authorization_outcome(kassa: Kassa, event: PSPEvent) -> Verdict:
    """How an authorisation that waited on the customer (3-D Secure) ended."""
    attempt = await payments_db.get_attempt(kassa.pool,
                                            event.reference) if event.reference else None
    if attempt is None or attempt.operation is not Operation.AUTHORIZE \
            or attempt.psp != event.psp:
        return "ignored", f"no authorisation attempt {event.reference!r} at {event.psp}"
    if attempt.status not in saga.RECORDABLE or event.outcome is None \
            or event.outcome is Outcome.REQUIRES_ACTION:
        return "ignored", f"authorisation already recorded ({attempt.status.value})"
    outcome = event.outcome
    if outcome in (Outcome.AUTHORIZED, Outcome.CAPTURED):
        # captured at once is what kassa asked the PSP for, not what an unsigned field says
        outcome = Outcome.CAPTURED if attempt.capture else Outcome.AUTHORIZED
    result = PSPResult(outcome, psp_reference=event.psp_reference, amount=event.amount,
                       decline_code=event.decline_code, message=event.message)
    return await _record(kassa, attempt, result)


async def _modification_attempt(conn: Any, event: PSPEvent, operation: Operation,
                                *also: Operation) -> tuple[Attempt | None, str]:
    """The attempt a modification's event is about: by the PSP's own id of the
    modification (Adyen's pspReference of the capture, cancel or refund, stored when the
    PSP answered ``received``; index attempts_operation_reference), else by the reference
    kassa gave it and the PSP echoes. The payment's reference at the PSP (Adyen's
    originalReference) must agree with the attempt's. Returns (attempt, why not)."""
    attempt = None
    if event.operation_reference:
        attempt = await payments_db.get_attempt_by_operation_reference(
            conn, psp=event.psp, operation_reference=event.operation_reference)
    if attempt is None and event.reference:
        attempt = await payments_db.get_attempt(conn, event.reference)
        if attempt is not None and attempt.operation_reference is not None \
                and attempt.operation_reference != event.operation_reference:
            return None, (f"{event.psp} names attempt {attempt.id} but its modification is "
                          f"{attempt.operation_reference}, not {event.operation_reference}")
    if attempt is None or attempt.psp != event.psp \
            or attempt.operation not in (operation, *also):
        return None, (f"no {operation.value} attempt {event.operation_reference or ''!s} "
                      f"{event.reference!r} at {event.psp}")
    if attempt.operation_reference is not None and attempt.psp_reference is not None \
            and attempt.psp_reference != event.psp_reference:
        return None, (f"{event.psp}'s event about {event.operation_reference} names payment "
                      f"{event.psp_reference}, attempt {attempt.id} is of "
                      f"{attempt.psp_reference}")
    return attempt, ""


def _event_result(attempt: Attempt, event: PSPEvent, outcome: Outcome) -> PSPResult:
    """An event's outcome as the finisher takes a PSP's answer. A PSP that names its
    modifications apart (Adyen) keeps the payment's reference on the attempt (where a
    repeat goes) and the modification's in ``operation_reference``."""
    own = attempt.operation_reference is not None
    return PSPResult(outcome,
                     psp_reference=(attempt.psp_reference or event.psp_reference) if own
                     else (event.operation_reference or attempt.psp_reference or ""),
                     amount=event.amount, decline_code=event.failure_code,
                     message=event.message,
                     operation_reference=event.operation_reference if own else None)


async def _capture_outcome(kassa: Kassa, uow: UnitOfWork, event: PSPEvent) -> Verdict:
    """A capture the PSP answered ``pending`` is confirmed or refused; a refusal after a
    recorded capture (Adyen's CAPTURE_FAILED after CAPTURE success=true: the scheme
    rejected it) is reversed on the ledger (capture.reverse) when nothing was built on it
    yet, else flagged for an operator — never ignored."""
    conn = await uow.connection()
    attempt, why = await _modification_attempt(conn, event, Operation.CAPTURE,
                                               Operation.AUTHORIZE)
    if attempt is None:
        return "ignored", why
    failed = event.type is PSPEventType.CAPTURE_FAILED
    if attempt.operation is Operation.AUTHORIZE:
        if failed and attempt.status is AttemptStatus.SUCCEEDED and attempt.capture:
            # a capture at once the scheme rejected; the charge's own attempt stays as it
            # is (its status is the charge's)
            return await _reverse_capture(kassa, uow, attempt, event)
        return "ignored", f"no capture attempt {event.reference!r} at {event.psp}"
    if failed and attempt.status is AttemptStatus.SUCCEEDED:
        return await _reverse_capture(kassa, uow, attempt, event)
    if attempt.status not in (*OPEN_ATTEMPT, AttemptStatus.PENDING):
        return "ignored", f"capture already recorded ({attempt.status.value})"
    result = _event_result(attempt, event, Outcome.FAILED if failed else Outcome.CAPTURED)
    return await _record(kassa, attempt, result)


async def _reverse_capture(kassa: Kassa, uow: UnitOfWork, attempt: Attempt,
                           event: PSPEvent) -> Verdict:
    conn = await uow.connection()
    # locked before the dispute check: a chargeback applied meanwhile by another worker
    # (another inbox object) either committed before this read, or waits for this commit
    # and then finds nothing received to take
    p = await payments_db.lock_payment_unscoped(conn, attempt.payment_intent_id)
    assert p is not None
    if attempt.operation is Operation.AUTHORIZE and p.hold_ref is not None:
        # the capture at once was reversed before (its hold posted again): what the
        # payment holds or captured now is another attempt's
        return "ignored", f"the capture of {p.id} at authorisation was reversed already"
    reversible = p.status is PaymentStatus.SUCCEEDED and p.amount_refunded == 0 \
        and p.latest_charge is not None \
        and (attempt.operation is Operation.AUTHORIZE or p.pending_attempt_id is None) \
        and not await disputes_db.payment_charged_back(conn, p.id)
    if not reversible:
        # refunded or disputed meanwhile: what the merchant already owes is an operator's
        # call; recovery must not repeat a capture that was recorded once
        note = _capture_reversed_note(attempt, event)
        log.error("%s", note)
        if attempt.operation is Operation.AUTHORIZE:
            return "failed", note
        attempt.status = AttemptStatus.NEEDS_ATTENTION
        attempt.error = {"code": "capture_failed_after_capture", "message": note,
                         "was": "succeeded", "psp_code": event.failure_code}
        uow.add(ops.FinishAttempt.of(attempt, expected=(AttemptStatus.SUCCEEDED,)))
        return "applied", note
    if attempt.operation is Operation.CAPTURE:
        attempt.status = AttemptStatus.FAILED
        attempt.error = {"code": "capture_failed", "was": "succeeded",
                         "psp_code": event.failure_code,
                         "message": event.message or "The card scheme rejected the capture."}
        uow.add(ops.FinishAttempt.of(attempt, expected=(AttemptStatus.SUCCEEDED,)))
    await capture.reverse(kassa, uow, attempt, p)
    log.warning("%s rejected the capture of %s (attempt %s) after it was recorded: "
                "reversed, the payment is %s", event.psp, p.id, attempt.id, p.status.value)
    return "applied", f"capture reversed; the payment is {p.status.value}"


def _capture_reversed_note(attempt: Attempt, event: PSPEvent) -> str:
    return (f"{event.psp} refused the capture of {attempt.payment_intent_id} (attempt "
            f"{attempt.id}) after it was recorded as captured, and the payment was refunded "
            f"or disputed since: the ledger still counts {attempt.amount.minor} "
            f"{attempt.amount.currency} the PSP will not collect; an operator must reverse "
            f"it ({event.message or event.failure_code})")


async def _void_outcome(kassa: Kassa, event: PSPEvent) -> Verdict:
    """A void the PSP answered ``pending`` (Adyen's cancel) is confirmed or refused."""
    async with kassa.pool.acquire() as conn:
        attempt, why = await _modification_attempt(conn, event, Operation.VOID)
    if attempt is None:
        return "ignored", why
    if attempt.status not in (*OPEN_ATTEMPT, AttemptStatus.PENDING):
        return "ignored", f"void already recorded ({attempt.status.value})"
    succeeded = event.type is PSPEventType.VOID_SUCCEEDED
    result = PSPResult(Outcome.VOIDED if succeeded else Outcome.FAILED,
                       psp_reference=attempt.psp_reference or event.psp_reference,
                       decline_code=event.failure_code, message=event.message,
                       operation_reference=event.operation_reference
                       if attempt.operation_reference is not None else None)
    return await _record(kassa, attempt, result)


async def _refund_outcome(kassa: Kassa, uow: UnitOfWork, event: PSPEvent) -> Verdict:
    """A pending refund settles, or a settled one bounces (its posting is reversed and the
    amount becomes refundable again)."""
    conn = await uow.connection()
    attempt, why = await _modification_attempt(conn, event, Operation.REFUND)
    if attempt is None or attempt.refund_id is None:
        return "ignored", why or f"no refund attempt {event.reference!r} at {event.psp}"
    if attempt.status in (AttemptStatus.STARTED, AttemptStatus.UNKNOWN):
        # The refund call's own answer comes first (its saga records pending/succeeded);
        # recovery resolves the attempt if that answer was lost.
        raise Deferred(f"refund attempt {attempt.id} is still {attempt.status.value}")
    succeeded = event.type is PSPEventType.REFUND_SUCCEEDED
    if attempt.status in (AttemptStatus.PENDING, AttemptStatus.NEEDS_ATTENTION):
        # pending, or recovery gave up asking: the PSP's own word settles it
        result = _event_result(attempt, event,
                               Outcome.REFUNDED if succeeded else Outcome.FAILED)
        return await _record(kassa, attempt, result)
    r = await refunds_db.get_refund(conn, merchant_id=None, refund_id=attempt.refund_id)
    p = await payments_db.get_payment_unscoped(conn, attempt.payment_intent_id)
    assert r is not None and p is not None and p.psp is not None
    if succeeded or r.status is not RefundStatus.SUCCEEDED:
        return "ignored", f"refund is already {r.status.value}"
    await refunds.bounce(kassa, uow, r, p, event.failure_code)
    return "applied", None
