"""/v1/refunds: create, retrieve, update (metadata), cancel (refused: see Refund.cancel),
list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kassa.api import deps, openapi, responses, routing, schemas
from kassa.services import refund_updates, refunds

router = APIRouter(prefix="/v1/refunds", tags=["refunds"], responses=openapi.V1_ERRORS)


@router.post("", responses={**openapi.ok(responses.RefundObject), **openapi.errors(402)},
             openapi_extra=openapi.body(schemas.RefundCreate))
async def create_refund(request: Request) -> Response:
    return await routing.post(request, schemas.RefundCreate, refunds.create, lambda body: dict(
        payment_intent=body.payment_intent, charge=body.charge, amount=body.amount,
        reason=body.reason, metadata=body.metadata))


@router.get("", responses=openapi.ok(responses.ListOf[responses.RefundObject]),
            openapi_extra=openapi.query(schemas.RefundListQuery))
async def list_refunds(request: Request, caller: deps.SecretKey,
                       q: Annotated[schemas.RefundListQuery,
                                    deps.query(schemas.RefundListQuery)]) -> Response:
    return await routing.list_page(request, caller, q, "/v1/refunds", refunds.list_,
                                   payment_intent=q.payment_intent, charge=q.charge)


@router.get("/{refund_id}", responses=openapi.ok(responses.RefundObject))
async def retrieve_refund(request: Request, refund_id: str) -> Response:
    return await routing.retrieve(request, refunds.retrieve, refund_id=refund_id)


@router.post("/{refund_id}", responses=openapi.ok(responses.RefundObject),
             openapi_extra=openapi.body(schemas.RefundUpdate))
async def update_refund(request: Request, refund_id: str) -> Response:
    return await routing.post(request, schemas.RefundUpdate, refund_updates.update,
                              lambda body: dict(metadata=body.metadata,
                                                given="metadata" in body.model_fields_set),
                              refund_id=refund_id)


@router.post("/{refund_id}/cancel", responses=openapi.ok(responses.RefundObject),
             openapi_extra=openapi.body(schemas.RefundCancel))
async def cancel_refund(request: Request, refund_id: str) -> Response:
    """Stripe cancels only refunds waiting in requires_action; kassa's card refunds go to
    the PSP when created, so this answers 400 for every existing refund (404 otherwise)."""
    return await routing.post(request, schemas.RefundCancel, refund_updates.cancel,
                              refund_id=refund_id)
