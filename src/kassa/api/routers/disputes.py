"""/v1/disputes: list, retrieve, update (evidence, metadata, submit), close."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kassa.api import deps, openapi, responses, routing
from kassa.api.schemas import Boolean, DisputeListQuery, Metadata, Params
from kassa.services import disputes

router = APIRouter(prefix="/v1/disputes", tags=["disputes"], responses=openapi.V1_ERRORS)


class DisputeUpdate(Params):
    evidence: dict[str, str] | None = None  # text fields; validated by the domain
    metadata: Metadata | None = None
    submit: Boolean = False


class DisputeClose(Params):
    pass


@router.get("", responses=openapi.ok(responses.ListOf[responses.DisputeObject]),
            openapi_extra=openapi.query(DisputeListQuery))
async def list_disputes(request: Request, caller: deps.SecretKey,
                        q: Annotated[DisputeListQuery, deps.query(DisputeListQuery)]) -> Response:
    return await routing.list_page(request, caller, q, "/v1/disputes", disputes.list_,
                                   payment_intent=q.payment_intent, charge=q.charge)


@router.get("/{dispute_id}", responses=openapi.ok(responses.DisputeObject))
async def retrieve_dispute(request: Request, dispute_id: str) -> Response:
    return await routing.retrieve(request, disputes.retrieve, dispute_id=dispute_id)


@router.post("/{dispute_id}", responses=openapi.ok(responses.DisputeObject),
             openapi_extra=openapi.body(DisputeUpdate))
async def update_dispute(request: Request, dispute_id: str) -> Response:
    return await routing.post(request, DisputeUpdate, disputes.update, lambda body: dict(
        evidence=body.evidence, metadata=body.metadata, submit=body.submit),
        dispute_id=dispute_id)


@router.post("/{dispute_id}/close", responses=openapi.ok(responses.DisputeObject),
             openapi_extra=openapi.body(DisputeClose))
async def close_dispute(request: Request, dispute_id: str) -> Response:
    return await routing.post(request, DisputeClose, disputes.close, dispute_id=dispute_id)
