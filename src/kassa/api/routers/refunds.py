"""/v1/refunds: create, retrieve, list."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kassa.api import deps, schemas
from kassa.domain.errors import InvalidRequest
from kassa.services import refunds

router = APIRouter(prefix="/v1/refunds", tags=["refunds"])


@router.post("")
async def create_refund(request: Request) -> Response:
    caller = await deps.authenticate(request)
    body, raw = await deps.params(request, schemas.RefundCreate)
    if body.charge is not None and body.payment_intent is None:
        raise InvalidRequest("Refunds by charge are not supported; pass payment_intent.",
                             param="charge")
    return await deps.run_post(request, caller, raw, lambda idem: refunds.create(
        deps.kassa(request), merchant_id=caller.merchant_id, payment_intent=body.payment_intent,
        amount=body.amount, reason=body.reason, metadata=body.metadata, idempotency=idem))


@router.get("")
async def list_refunds(request: Request) -> Response:
    caller = await deps.authenticate(request)
    q = deps.list_query(request)
    items, more = await refunds.list_(
        deps.kassa(request), merchant_id=caller.merchant_id, limit=q.limit,
        starting_after=q.starting_after, ending_before=q.ending_before,
        payment_intent=request.query_params.get("payment_intent"))
    return deps.list_response("/v1/refunds", items, more)


@router.get("/{refund_id}")
async def retrieve_refund(request: Request, refund_id: str) -> Response:
    caller = await deps.authenticate(request)
    return deps.respond(await refunds.retrieve(deps.kassa(request),
                                               merchant_id=caller.merchant_id,
                                               refund_id=refund_id))
