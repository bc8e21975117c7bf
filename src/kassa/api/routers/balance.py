"""/v1/balance and /v1/balance_transactions."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kassa.api import deps
from kassa.domain.errors import NotFound
from kassa.services import balances

router = APIRouter(tags=["balance"])


@router.get("/v1/balance")
async def retrieve_balance(request: Request) -> Response:
    caller = await deps.authenticate(request)
    return deps.respond(await balances.balance(deps.kassa(request),
                                               merchant_id=caller.merchant_id))


@router.get("/v1/balance_transactions")
async def list_balance_transactions(request: Request) -> Response:
    caller = await deps.authenticate(request)
    q = deps.list_query(request)
    items, more = await balances.list_balance_transactions(
        deps.kassa(request), merchant_id=caller.merchant_id, limit=q.limit,
        starting_after=q.starting_after, ending_before=q.ending_before,
        type=request.query_params.get("type"))
    return deps.list_response("/v1/balance_transactions", items, more)


@router.get("/v1/balance_transactions/{bt_id}")
async def retrieve_balance_transaction(request: Request, bt_id: str) -> Response:
    caller = await deps.authenticate(request)
    bt = await balances.retrieve_balance_transaction(deps.kassa(request),
                                                     merchant_id=caller.merchant_id, bt_id=bt_id)
    if bt is None:
        raise NotFound(f"No such balance transaction: '{bt_id}'", param="id")
    return deps.respond(bt)
