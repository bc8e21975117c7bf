"""Resume a saga whose request died: a retry that took its Idempotency-Key over finishes
the open attempt (if any) and answers as the original request would have. Also the one
read every flow starts from (``load``)."""

from __future__ import annotations

from typing import Any

from kassa import representations
from kassa.db import payments as payments_db
from kassa.domain.errors import CardError, ConcurrentModification, NotFound
from kassa.domain.payments import OPEN_ATTEMPT, AttemptStatus, PaymentIntent, PaymentStatus
from kassa.services import saga
from kassa.services.context import Kassa
from kassa.services.uow import IdempotencyHandle, UnitOfWork

PI = representations.payment_intent


async def load(kassa: Kassa, *, merchant_id: str, payment_id: str) -> PaymentIntent:
    p = await payments_db.get_payment(kassa.pool, merchant_id=merchant_id, payment_id=payment_id)
    if p is None:
        raise NotFound(f"No such payment_intent: '{payment_id}'", param="intent")
    return p


async def answer(kassa: Kassa, p: PaymentIntent,
                 idempotency: IdempotencyHandle | None) -> dict[str, Any]:
    """Store the current state as the key's response (after a takeover) and return it."""
    async with UnitOfWork(kassa, idempotency) as uow:
        await uow.commit(response=PI(p))
    return PI(p)


def took_over(idempotency: IdempotencyHandle | None) -> bool:
    return idempotency is not None and idempotency.took_over


async def finish_orphan(kassa: Kassa, p: PaymentIntent,
                        idempotency: IdempotencyHandle | None) -> dict[str, Any]:
    """Answer a retry whose key's first holder died: finish its open attempt (if any),
    answering as the original request would have."""
    if p.pending_attempt_id is not None:
        attempt = await payments_db.get_attempt(kassa.pool, p.pending_attempt_id)
        if attempt is not None and attempt.status in (*OPEN_ATTEMPT, AttemptStatus.PENDING):
            if await saga.resolve(kassa, attempt, idempotency) == "recorded":
                done = await payments_db.get_attempt(kassa.pool, attempt.id)
                assert done is not None
                return await saga.answer_recorded(kassa, done, idempotency)
            # still unknown at the PSP: no answer yet. 409, and the key stays open, so
            # the next retry (or recovery, storing the real outcome) answers it
            raise ConcurrentModification(
                "The outcome of this request's payment attempt is not known yet; retry "
                "with the same Idempotency-Key later.")
    current = await load(kassa, merchant_id=p.merchant_id, payment_id=p.id)
    if current.status is PaymentStatus.REQUIRES_PAYMENT_METHOD and current.last_payment_error:
        error = CardError.from_error(current.last_payment_error, payment_intent=PI(current))
        async with UnitOfWork(kassa, idempotency) as uow:
            await uow.commit(response=error)
        raise error
    return await answer(kassa, current, idempotency)
