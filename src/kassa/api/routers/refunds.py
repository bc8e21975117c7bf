"""/v1/refunds: create, retrieve, list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from kassa.api import deps, openapi, responses, schemas
from kassa.domain.errors import InvalidRequest
from kassa.services import refunds

router = APIRouter(prefix="/v1/refunds", tags=["refunds"], responses=openapi.V1_ERRORS)


@router.post("", responses={**openapi.ok(responses.RefundObject), **openapi.errors(402)},
             openapi_extra=openapi.body(schemas.RefundCreate))
async def create_refund(request: Request) -> Response:
    caller = await deps.authenticate(request)
    body, raw = await deps.params(request, schemas.RefundCreate)
    if body.charge is not None and body.payment_intent is None:
        raise InvalidRequest("Refunds by charge are not supported; pass payment_intent.",
                             param="charge")
    return await deps.run_post(request, caller, raw, lambda idem: refunds.create(
        deps.kassa(request), merchant_id=caller.merchant_id, payment_intent=body.payment_intent,
        amount=body.amount, reason=body.reason, metadata=body.metadata, idempotency=idem))


@router.get("", responses=openapi.ok(responses.ListOf[responses.RefundObject]))
async def list_refunds(request: Request, caller: deps.SecretKey,
                       q: Annotated[schemas.RefundListQuery, Query()]) -> Response:
    items, more = await refunds.list_(
        deps.kassa(request), merchant_id=caller.merchant_id, limit=q.limit,
        starting_after=q.starting_after, ending_before=q.ending_before,
        payment_intent=q.payment_intent)
    return deps.list_response("/v1/refunds", items, more)


@router.get("/{refund_id}", responses=openapi.ok(responses.RefundObject))
async def retrieve_refund(request: Request, refund_id: str) -> Response:
    caller = await deps.authenticate(request)
    return deps.respond(await refunds.retrieve(deps.kassa(request),
                                               merchant_id=caller.merchant_id,
                                               refund_id=refund_id))
