"""POST /v1/refunds/{id} (metadata) and POST /v1/refunds/{id}/cancel."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kassa import representations
from kassa.db import ops
from kassa.db import refunds as refunds_db
from kassa.domain.errors import NotFound
from kassa.domain.intent_fields import merge_metadata
from kassa.domain.payments import Refund
from kassa.services.context import Kassa
from kassa.services.resume import load
from kassa.services.uow import IdempotencyHandle, UnitOfWork


async def _load(kassa: Kassa, merchant_id: str, refund_id: str) -> Refund:
    r = await refunds_db.get_refund(kassa.pool, merchant_id=merchant_id, refund_id=refund_id)
    if r is None:
        raise NotFound(f"No such refund: '{refund_id}'", param="id")
    return r


async def update(kassa: Kassa, *, merchant_id: str, refund_id: str,
                 metadata: Mapping[str, str | None] | None, given: bool,
                 idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    """``metadata``: a patch (a key mapped to None is removed; None clears all); ``given``:
    whether the request had metadata at all (without, nothing changes). One CAS on the
    refund's version, so it cannot undo a finisher's status change."""
    r = await _load(kassa, merchant_id, refund_id)
    p = await load(kassa, merchant_id=merchant_id, payment_id=r.payment_intent_id)
    if given:
        r.metadata = merge_metadata(r.metadata, metadata)
    obj = representations.refund(r, charge=p.latest_charge, payment_method=p.payment_method)
    async with UnitOfWork(kassa, idempotency) as uow:
        if given:
            uow.add(ops.UpdateRefund.of(r))
            uow.emit(merchant_id=merchant_id, type="refund.updated", obj=obj)
        await uow.commit(response=obj)
    return obj


async def cancel(kassa: Kassa, *, merchant_id: str, refund_id: str,
                 idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    """Refused for every kassa refund (``Refund.cancel`` says why); 404 for an unknown one."""
    r = await _load(kassa, merchant_id, refund_id)
    r.cancel()
