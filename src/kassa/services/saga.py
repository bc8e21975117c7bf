"""The saga runner: the one skeleton every PSP operation follows (ARCHITECTURE §3).

1. The flow commits its attempt (``started``) together with the state change that starts
   it — from then on the attempt id is the PSP idempotency key (``begin``).
2. ``call`` sends the PSP call outside any transaction and sorts what came back into the
   three PSP error classes: a *refusal* (4xx) becomes a recorded failure of the attempt;
   *unavailable* and *outcome unknown* leave the attempt to recovery (``None``).
3. ``finish`` records the outcome through the operation's one finisher (flows.py),
   used alike by the request, recovery (``resolve``), the customer's 3-D Secure return and
   PSP webhooks. A compare-and-swap miss is retried on a fresh read while the attempt is
   still open; once someone else recorded it, the answer is the one that writer gave
   (``answer_recorded``), so a request that loses the race to a decline answers 402 too.

Whoever records an outcome also stores the request's Idempotency-Key answer when the
request is gone (``store_answer``): a retry then replays what the original request would
have answered.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from kassa import representations
from kassa.db import ops
from kassa.db import payments as payments_db
from kassa.db import refunds as refunds_db
from kassa.domain import psp_tokens
from kassa.domain.errors import CardError, ConcurrentModification, InvalidRequest, KassaError
from kassa.domain.payments import OPEN_ATTEMPT, Attempt, AttemptStatus, Operation, PaymentIntent
from kassa.psp.base import (
    AttemptRef,
    AuthorizeRequest,
    CannotLookUp,
    Outcome,
    PSPRefused,
    PSPResult,
    PSPRetryable,
    UnknownOperation,
)
from kassa.services.context import Kassa
from kassa.services.uow import IdempotencyHandle, UnitOfWork

log = logging.getLogger(__name__)

PI = representations.payment_intent
CAS_RETRIES = 3
# statuses a finisher may record over: open, waiting on the PSP, waiting on the customer
RECORDABLE = (*OPEN_ATTEMPT, AttemptStatus.PENDING, AttemptStatus.REQUIRES_ACTION)
# a modification the PSP accepted but has not confirmed yet
PENDING_OUTCOMES = frozenset({Outcome.CAPTURE_PENDING, Outcome.VOID_PENDING,
                              Outcome.REFUND_PENDING})


class Unrecordable(Exception):
    """The PSP reports something kassa's books cannot take as it is (a capture above what
    was authorised, in another currency): the attempt goes to needs_attention with the
    PSP's answer, for an operator, instead of guessing."""


class Finisher(Protocol):
    async def __call__(self, kassa: Kassa, attempt: Attempt, result: PSPResult, *,
                       payment: PaymentIntent | None,
                       idempotency: IdempotencyHandle | None) -> dict[str, Any]: ...


class Repeater(Protocol):
    async def __call__(self, kassa: Kassa, attempt: Attempt) -> PSPResult: ...


def finisher_of(operation: Operation) -> Finisher:
    # the table lives in flows.py, which imports every flow (and they import this module)
    from kassa.services.flows import FINISHERS

    return FINISHERS[operation]


def repeater_of(operation: Operation) -> Repeater:
    from kassa.services.flows import REPEATERS

    return REPEATERS[operation]


# ------------------------------------------------------------------------ step 1


def begin(kassa: Kassa, uow: UnitOfWork, attempt: Attempt,
          idempotency: IdempotencyHandle | None) -> None:
    """Add the attempt's insert to step 1; recovery looks at it if nobody records it."""
    if idempotency is not None:
        attempt.idempotency_key = idempotency.key
    attempt.created = attempt.created or kassa.clock()
    uow.add(ops.InsertAttempt.of(attempt, check_after_s=kassa.recovery_after_seconds))


async def commit_start(kassa: Kassa, p: PaymentIntent, attempt: Attempt,
                       idempotency: IdempotencyHandle | None) -> None:
    """Step 1 of an operation on an existing payment: its move and the attempt, together."""
    async with UnitOfWork(kassa, idempotency) as uow:
        uow.add(ops.UpdatePayment.of(p))
        begin(kassa, uow, attempt, idempotency)
        await uow.commit()


# ------------------------------------------------------------------------ step 2


async def call(attempt: Attempt, send: Callable[[], Awaitable[PSPResult]]) -> PSPResult | None:
    """The PSP call. A refusal is a result (recorded as the attempt's failure); None when
    the outcome is unknown (or the PSP provably never got it: repeating is safe either
    way, and recovery repeats it with the same key)."""
    try:
        return await send()
    except PSPRefused as exc:
        log.warning("%s refused %s %s: %s", attempt.psp, attempt.operation.value, attempt.id,
                    exc)
        return refused(attempt, exc)
    except PSPRetryable as exc:
        log.info("%s %s %s: outcome unknown (%s)", attempt.psp, attempt.operation.value,
                 attempt.id, exc)
        return None


def refused(attempt: Attempt, exc: Exception) -> PSPResult:
    """A PSP refusal as a failed result: an authorisation is a `processing_error` decline
    (nothing was charged), any other operation a failure with the PSP's reason."""
    message = "The payment processor refused the request."
    if attempt.operation is Operation.AUTHORIZE:
        return PSPResult(Outcome.DECLINED, attempt.psp_reference or "",
                         decline_code="processing_error", message=message,
                         raw_status=str(exc)[:200])
    return PSPResult(Outcome.FAILED, attempt.psp_reference or "", decline_code="psp_refused",
                     message=f"{message} ({str(exc)[:200]})")


async def leave_unknown(kassa: Kassa, attempt: Attempt, answer: dict[str, Any],
                        idempotency: IdempotencyHandle | None) -> dict[str, Any]:
    """The PSP did not answer: recovery learns the truth; the client gets ``answer``."""
    async with UnitOfWork(kassa, idempotency) as uow:
        uow.add(ops.MarkAttemptUnknown(attempt.id))
        await uow.commit(response=answer)
    return answer


async def run(kassa: Kassa, attempt: Attempt, send: Callable[[], Awaitable[PSPResult]], *,
              payment: PaymentIntent | None, unknown_answer: dict[str, Any],
              idempotency: IdempotencyHandle | None) -> dict[str, Any]:
    """Steps 2 and 3 for an attempt that step 1 committed."""
    result = await call(attempt, send)
    if result is None:
        return await leave_unknown(kassa, attempt, unknown_answer, idempotency)
    return await finish(kassa, attempt, result, payment=payment, idempotency=idempotency)


# ------------------------------------------------------------------------ step 3


def cas_on(attempt: Attempt) -> tuple[AttemptStatus, tuple[AttemptStatus, ...]]:
    """(the status a finisher found, the statuses its compare-and-swap accepts): any open
    one while the outcome is unknown, else exactly the waiting status it read."""
    was = attempt.status
    return was, OPEN_ATTEMPT if was in OPEN_ATTEMPT else (was,)


async def finish(kassa: Kassa, attempt: Attempt, result: PSPResult, *,
                 payment: PaymentIntent | None = None,
                 idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    """Record ``result`` through the operation's finisher; raises the answer's error
    (a decline's CardError…) exactly as the original request would."""
    finisher = finisher_of(attempt.operation)
    if result.operation_reference is not None:
        # the modification's own id at the PSP (Adyen's `received`): stored with the
        # outcome (FinishAttempt), so its notification finds this attempt by it
        attempt.operation_reference = result.operation_reference
    for _ in range(CAS_RETRIES + 1):
        try:
            return await finisher(kassa, attempt, result, payment=payment,
                                  idempotency=idempotency)
        except Unrecordable as exc:
            log.error("attempt %s needs attention: %s", attempt.id, exc)
            async with kassa.pool.acquire() as conn:
                await payments_db.flag_attempt(conn, attempt.id, note=str(exc),
                                               recheck_s=kassa.watch.backoff_cap_seconds)
            now = PI(await reload(kassa, attempt.payment_intent_id))
            if idempotency is not None:  # answered like a timeout: the outcome is open
                async with UnitOfWork(kassa, idempotency) as uow:
                    await uow.commit(response=now)
            return now
        except ConcurrentModification:
            current = await payments_db.get_attempt(kassa.pool, attempt.id)
            if current is None or current.status not in RECORDABLE:
                # recorded by someone else (recovery, a webhook, the original request)
                return await answer_recorded(kassa, current or attempt, idempotency)
            # only the payment (or refund) row moved, or the attempt moved on to waiting:
            # the outcome must still be recorded, on a fresh read
            attempt.status = current.status
            attempt.error = None
            payment = None
    raise ConcurrentModification("The outcome could not be recorded yet; it will be.")


async def answer_recorded(kassa: Kassa, attempt: Attempt,
                          idempotency: IdempotencyHandle | None) -> dict[str, Any]:
    """The answer for an attempt someone else recorded: what that writer answered."""
    p = await reload(kassa, attempt.payment_intent_id)
    answer: object
    if attempt.operation is Operation.REFUND:
        assert attempt.refund_id is not None
        r = await refunds_db.get_refund(kassa.pool, merchant_id=None, refund_id=attempt.refund_id)
        assert r is not None
        answer = representations.refund(r, charge=p.latest_charge,
                                        payment_method=p.payment_method)
    elif attempt.status is AttemptStatus.FAILED:
        answer = failure_error(attempt, p)
    else:
        answer = PI(p)
    if idempotency is not None and not idempotency.completed:
        async with UnitOfWork(kassa, idempotency) as uow:
            await uow.commit(response=answer)
    if isinstance(answer, KassaError):
        raise answer
    assert isinstance(answer, dict)
    return answer


def failure_error(attempt: Attempt, p: PaymentIntent) -> KassaError:
    """The error a failed attempt answers (decline: 402 card_error; others: 400)."""
    err = attempt.error or {}
    message = str(err.get("message") or "The operation failed.")
    if attempt.operation is Operation.AUTHORIZE:
        return CardError.from_error({"charge": attempt.id, **err, "message": message},
                                    payment_intent=PI(p))
    return InvalidRequest(message, code=str(err.get("code") or f"{attempt.operation}_failed"))


async def commit_outcome(kassa: Kassa, uow: UnitOfWork, attempt: Attempt, answer: object,
                         idempotency: IdempotencyHandle | None) -> None:
    """Commit step 3 with the key's answer: the request's own key when it is the one
    recording, else (recovery, a webhook, the customer's return) the key of the request
    that started the attempt, unless that one already has its answer."""
    if idempotency is not None:
        await uow.commit(response=answer)
        return
    store_answer(kassa, uow, attempt, answer)
    await uow.commit()


def store_answer(kassa: Kassa, uow: UnitOfWork, attempt: Attempt, answer: object) -> None:
    if attempt.idempotency_key is None or kassa.render is None:
        return
    status, body = kassa.render(answer)
    uow.add(ops.CompleteIdempotency(merchant_id=attempt.merchant_id,
                                         key=attempt.idempotency_key, status=status,
                                         body=body, for_attempt=attempt.id))


async def reload(kassa: Kassa, payment_id: str) -> PaymentIntent:
    p = await payments_db.get_payment_unscoped(kassa.pool, payment_id)
    assert p is not None, payment_id
    return p


# ------------------------------------------------------------------------ recovery


def attempt_ref(attempt: Attempt) -> AttemptRef:
    """The attempt as an adapter's lookup needs it."""
    return AttemptRef(operation=attempt.operation, idempotency_key=attempt.id,
                      amount=attempt.amount, merchant_id=attempt.merchant_id,
                      payment_id=attempt.payment_intent_id,
                      psp_reference=attempt.psp_reference, created=attempt.created)


async def ask(kassa: Kassa, attempt: Attempt) -> PSPResult | None:
    """What the PSP did with this attempt, found by the PSP's own means; a call it has no
    record of is repeated with the same key (declaring it failed would race the original
    still on its way). None: still unknown."""
    psp = kassa.psp(attempt.psp)
    blind = False
    try:
        return await psp.lookup(attempt_ref(attempt))
    except CannotLookUp:
        blind = attempt.operation is not Operation.AUTHORIZE
    except UnknownOperation:
        pass
    except PSPRetryable:
        return None
    except PSPRefused as exc:
        log.warning("%s refused the status query for %s: %s", attempt.psp, attempt.id, exc)
        return None
    repeat = repeater_of(attempt.operation)
    if not blind:
        return await call(attempt, lambda: repeat(kassa, attempt))
    # a modification the PSP cannot read back: only its answer from the PSP's idempotency
    # store (or its notification) tells; a refused repeat is no outcome of the original
    try:
        return await repeat(kassa, attempt)
    except PSPRefused as exc:
        log.warning("%s refused the repeat of %s %s; it stays unresolved until the PSP's "
                    "notification: %s", attempt.psp, attempt.operation.value, attempt.id, exc)
        return None
    except PSPRetryable:
        return None


async def repeat_authorization(kassa: Kassa, attempt: Attempt) -> PSPResult:
    """The authorisation exactly as first sent: same key, card, amount, return URL."""
    p = await reload(kassa, attempt.payment_intent_id)
    card = None
    if p.payment_method is not None:
        card = await kassa.payment_methods.resolve(merchant_id=p.merchant_id,
                                                   payment_method=p.payment_method)
    if card is None:  # the card is gone: nothing was charged, nothing can be
        return PSPResult(Outcome.DECLINED, "", decline_code="processing_error",
                         message="The payment could not be completed; please retry.")
    return await kassa.psp(attempt.psp).authorize(authorize_request(kassa, attempt, p, card))


def authorize_request(kassa: Kassa, attempt: Attempt, p: PaymentIntent,
                      card: Any) -> AuthorizeRequest:
    return AuthorizeRequest(
        idempotency_key=attempt.id, amount=attempt.amount, card=card, capture=attempt.capture,
        merchant_id=p.merchant_id, description=p.description, payment_id=p.id,
        payment_method=p.payment_method, psp_token=psp_tokens.token_of(p.payment_method),
        return_url=psp_return_url(kassa, attempt), off_session=attempt.off_session)


def psp_return_url(kassa: Kassa, attempt: Attempt) -> str:
    """Where the PSP sends the customer after 3-D Secure: kassa's return endpoint for this
    attempt, which records the outcome before sending the customer on to the merchant's
    return_url (so that page already sees the final status)."""
    return f"{kassa.public_url.rstrip('/')}/psp/{attempt.psp}/return/{attempt.id}"


def _accepted_before(attempt: Attempt) -> bool:
    """The PSP had accepted this operation already (pending, or flagged while pending): a
    repeat answered "accepted" again is no news, and leaves a flag for an operator as
    it is."""
    was = (attempt.error or {}).get("was")
    return attempt.status is AttemptStatus.PENDING or (
        attempt.status is AttemptStatus.NEEDS_ATTENTION and was == AttemptStatus.PENDING.value)


async def resolve(kassa: Kassa, attempt: Attempt,
                  idempotency: IdempotencyHandle | None = None) -> str:
    """Ask the PSP about an open or pending attempt and record what it says. Returns
    what happened: recorded, recorded_elsewhere (someone else recorded it first),
    unresolved (the PSP could not tell; still open or pending)."""
    result = await ask(kassa, attempt)
    if result is None or result.outcome in PENDING_OUTCOMES and _accepted_before(attempt):
        return "unresolved"
    if result.outcome is Outcome.REQUIRES_ACTION and attempt.status is \
            AttemptStatus.REQUIRES_ACTION:
        return "unresolved"
    before = attempt.status
    try:
        await finish(kassa, attempt, result, idempotency=idempotency)
    except KassaError:
        pass  # a decline or refused operation: recorded, and that is the answer
    current = await payments_db.get_attempt(kassa.pool, attempt.id)
    if current is None or current.status is before:
        return "unresolved"
    if current.status is AttemptStatus.NEEDS_ATTENTION:
        return "needs_attention"
    return "recorded"
