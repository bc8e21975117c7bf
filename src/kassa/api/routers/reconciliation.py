"""/v1/reconciliation_runs (kassa extension): the platform's reconciliation runs of PSP
settlement reports, their discrepancies, and resolving one (who and why). Runs span every
merchant, so only the platform account's secret keys (``KASSA_PLATFORM_ACCOUNT``) may call
these; any other key is a 403. Runs are made by ``kassa reconcile import``."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import Field

from kassa import representations
from kassa.api import deps, errors, openapi, responses
from kassa.api.schemas import Id, Limit, Params
from kassa.services import reconciliation
from kassa.services.merchants import Caller

router = APIRouter(tags=["reconciliation"], responses=openapi.V1_ERRORS)


class RunObject(responses._Open):
    id: str
    object: Literal["reconciliation_run"]
    status: str
    rows_read: int
    rows_matched: int


class DiscrepancyObject(responses._Open):
    id: str
    object: Literal["reconciliation_discrepancy"]
    kind: str


class RunListQuery(Params):
    limit: Limit = 10
    starting_after: Id | None = None
    ending_before: Id | None = None


class DiscrepancyListQuery(Params):
    limit: Limit = 10
    starting_after: Id | None = None
    kind: Literal["missing_in_kassa", "missing_at_psp", "amount_mismatch", "fee_mismatch",
                  "currency_mismatch", "status_mismatch"] | None = None
    resolution: Literal["open", "auto_resolved", "resolved"] | None = None


class DiscrepancyResolve(Params):
    resolved_by: Annotated[str, Field(min_length=1, max_length=200)]
    reason: Annotated[str, Field(min_length=1, max_length=2000)]


async def platform(request: Request) -> Caller:
    caller = await deps.authenticate(request)
    allowed = deps.kassa(request).platform_account
    if allowed is None or caller.merchant_id != allowed:
        raise errors.PermissionDenied(
            "Reconciliation runs belong to the platform: use a secret key of the platform "
            "account (KASSA_PLATFORM_ACCOUNT).")
    return caller


@router.get("/v1/reconciliation_runs", responses=openapi.ok(responses.ListOf[RunObject]),
            openapi_extra=openapi.query(RunListQuery))
async def list_runs(request: Request,
                    q: Annotated[RunListQuery, deps.query(RunListQuery)]) -> Response:
    await platform(request)
    items, more = await reconciliation.list_runs(
        deps.kassa(request), limit=q.limit, starting_after=q.starting_after,
        ending_before=q.ending_before)
    return deps.respond(representations.list_object("/v1/reconciliation_runs", items, more))


@router.get("/v1/reconciliation_runs/{run_id}", responses=openapi.ok(RunObject))
async def retrieve_run(request: Request, run_id: Id) -> Response:
    await platform(request)
    return deps.respond(await reconciliation.retrieve_run(deps.kassa(request), run_id=run_id))


@router.get("/v1/reconciliation_runs/{run_id}/discrepancies",
            responses=openapi.ok(responses.ListOf[DiscrepancyObject]),
            openapi_extra=openapi.query(DiscrepancyListQuery))
async def list_discrepancies(request: Request, run_id: Id, q: Annotated[
        DiscrepancyListQuery, deps.query(DiscrepancyListQuery)]) -> Response:
    await platform(request)
    items, more = await reconciliation.list_discrepancies(
        deps.kassa(request), run_id=run_id, limit=q.limit, starting_after=q.starting_after,
        kind=q.kind, resolution=q.resolution)
    return deps.respond(representations.list_object(
        f"/v1/reconciliation_runs/{run_id}/discrepancies", items, more))


@router.post("/v1/reconciliation_discrepancies/{discrepancy_id}/resolve",
             responses=openapi.ok(DiscrepancyObject),
             openapi_extra=openapi.body(DiscrepancyResolve))
async def resolve_discrepancy(request: Request, discrepancy_id: Id) -> Response:
    caller = await platform(request)
    body, raw = await deps.params(request, DiscrepancyResolve)
    k = deps.kassa(request)
    return await deps.run_post(request, caller, raw, lambda idem: reconciliation.
                               resolve_discrepancy(k, discrepancy_id=discrepancy_id,
                                                   resolved_by=body.resolved_by,
                                                   reason=body.reason, idempotency=idem))
