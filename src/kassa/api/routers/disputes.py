"""/v1/disputes: list, retrieve, update (evidence, metadata, submit), close."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from kassa.api import deps, openapi, responses
from kassa.api.schemas import Boolean, DisputeListQuery, Metadata, Params
from kassa.services import disputes

router = APIRouter(prefix="/v1/disputes", tags=["disputes"], responses=openapi.V1_ERRORS)


class DisputeUpdate(Params):
    evidence: dict[str, str] | None = None  # text fields; validated by the domain
    metadata: Metadata | None = None
    submit: Boolean = False


class DisputeClose(Params):
    pass


@router.get("", responses=openapi.ok(responses.ListOf[responses.DisputeObject]))
async def list_disputes(request: Request, caller: deps.SecretKey,
                        q: Annotated[DisputeListQuery, Query()]) -> Response:
    items, more = await disputes.list_(
        deps.kassa(request), merchant_id=caller.merchant_id, limit=q.limit,
        starting_after=q.starting_after, ending_before=q.ending_before,
        payment_intent=q.payment_intent, charge=q.charge)
    return deps.list_response("/v1/disputes", items, more)


@router.get("/{dispute_id}", responses=openapi.ok(responses.DisputeObject))
async def retrieve_dispute(request: Request, dispute_id: str) -> Response:
    caller = await deps.authenticate(request)
    return deps.respond(await disputes.retrieve(deps.kassa(request),
                                                merchant_id=caller.merchant_id,
                                                dispute_id=dispute_id))


@router.post("/{dispute_id}", responses=openapi.ok(responses.DisputeObject),
             openapi_extra=openapi.body(DisputeUpdate))
async def update_dispute(request: Request, dispute_id: str) -> Response:
    caller = await deps.authenticate(request)
    body, raw = await deps.params(request, DisputeUpdate)
    return await deps.run_post(request, caller, raw, lambda idem: disputes.update(
        deps.kassa(request), merchant_id=caller.merchant_id, dispute_id=dispute_id,
        evidence=body.evidence, metadata=body.metadata, submit=body.submit,
        idempotency=idem))


@router.post("/{dispute_id}/close", responses=openapi.ok(responses.DisputeObject),
             openapi_extra=openapi.body(DisputeClose))
async def close_dispute(request: Request, dispute_id: str) -> Response:
    caller = await deps.authenticate(request)
    _, raw = await deps.params(request, DisputeClose)
    return await deps.run_post(request, caller, raw, lambda idem: disputes.close(
        deps.kassa(request), merchant_id=caller.merchant_id, dispute_id=dispute_id,
        idempotency=idem))
