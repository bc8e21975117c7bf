"""/v1/charges: retrieve, list (by payment_intent, created), and a charge's refunds."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kassa.api import deps, openapi, responses, routing, schemas
from kassa.services import charges, pagination, refunds

router = APIRouter(prefix="/v1/charges", tags=["charges"], responses=openapi.V1_ERRORS)


@router.get("", responses=openapi.ok(responses.ListOf[responses.ChargeObject]),
            openapi_extra=openapi.query(schemas.ChargeListQuery))
async def list_charges(request: Request, caller: deps.SecretKey,
                       q: Annotated[schemas.ChargeListQuery,
                                    deps.query(schemas.ChargeListQuery)]) -> Response:
    return await routing.list_page(request, caller, q, "/v1/charges", charges.list_,
                                   payment_intent=q.payment_intent)


@router.get("/{charge_id}", responses=openapi.ok(responses.ChargeObject))
async def retrieve_charge(request: Request, charge_id: str) -> Response:
    return await routing.retrieve(request, charges.retrieve, charge_id=charge_id)


@router.get("/{charge_id}/refunds", responses=openapi.ok(responses.ListOf[
    responses.RefundObject]), openapi_extra=openapi.query(schemas.ListQuery))
async def list_charge_refunds(request: Request, charge_id: str, caller: deps.SecretKey,
                              q: Annotated[schemas.ListQuery, deps.query(schemas.ListQuery)]
                              ) -> Response:
    """The page a charge's ``refunds`` list continues on (Stripe's /v1/charges/…/refunds)."""
    k = deps.kassa(request)
    await charges.retrieve(k, merchant_id=caller.merchant_id,
                           charge_id=charge_id)  # 404 for another merchant's or none
    # its cursors name refunds (this URL is not one pagination knows by name)
    await pagination.require_cursors(k, merchant_id=caller.merchant_id, url="/v1/refunds",
                                     starting_after=q.starting_after,
                                     ending_before=q.ending_before)
    return await routing.list_page(request, caller, q, f"/v1/charges/{charge_id}/refunds",
                                   refunds.list_, payment_intent=None, charge=charge_id)
