"""/v1/disputes: list, retrieve, update (evidence, metadata, submit), close."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kassa.api import deps
from kassa.api.schemas import Boolean, Metadata, Params
from kassa.services import disputes

router = APIRouter(prefix="/v1/disputes", tags=["disputes"])


class DisputeUpdate(Params):
    evidence: dict[str, str] | None = None  # text fields; validated by the domain
    metadata: Metadata | None = None
    submit: Boolean = False


class DisputeClose(Params):
    pass


@router.get("")
async def list_disputes(request: Request) -> Response:
    caller = await deps.authenticate(request)
    q = deps.list_query(request)
    items, more = await disputes.list_(
        deps.kassa(request), merchant_id=caller.merchant_id, limit=q.limit,
        starting_after=q.starting_after, ending_before=q.ending_before,
        payment_intent=request.query_params.get("payment_intent"),
        charge=request.query_params.get("charge"))
    return deps.list_response("/v1/disputes", items, more)


@router.get("/{dispute_id}")
async def retrieve_dispute(request: Request, dispute_id: str) -> Response:
    caller = await deps.authenticate(request)
    return deps.respond(await disputes.retrieve(deps.kassa(request),
                                                merchant_id=caller.merchant_id,
                                                dispute_id=dispute_id))


@router.post("/{dispute_id}")
async def update_dispute(request: Request, dispute_id: str) -> Response:
    caller = await deps.authenticate(request)
    body, raw = await deps.params(request, DisputeUpdate)
    return await deps.run_post(request, caller, raw, lambda idem: disputes.update(
        deps.kassa(request), merchant_id=caller.merchant_id, dispute_id=dispute_id,
        evidence=body.evidence, metadata=body.metadata, submit=body.submit,
        idempotency=idem))


@router.post("/{dispute_id}/close")
async def close_dispute(request: Request, dispute_id: str) -> Response:
    caller = await deps.authenticate(request)
    _, raw = await deps.params(request, DisputeClose)
    return await deps.run_post(request, caller, raw, lambda idem: disputes.close(
        deps.kassa(request), merchant_id=caller.merchant_id, dispute_id=dispute_id,
        idempotency=idem))
