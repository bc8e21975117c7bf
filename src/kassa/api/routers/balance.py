"""/v1/balance and /v1/balance_transactions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from kassa.api import deps, openapi, responses
from kassa.api.schemas import BalanceTransactionListQuery
from kassa.domain.errors import NotFound
from kassa.services import balances

router = APIRouter(tags=["balance"], responses=openapi.V1_ERRORS)


@router.get("/v1/balance", responses=openapi.ok(responses.BalanceObject))
async def retrieve_balance(request: Request) -> Response:
    caller = await deps.authenticate(request)
    return deps.respond(await balances.balance(deps.kassa(request),
                                               merchant_id=caller.merchant_id))


@router.get("/v1/balance_transactions",
            responses=openapi.ok(responses.ListOf[responses.BalanceTransactionObject]))
async def list_balance_transactions(request: Request, caller: deps.SecretKey,
                                    q: Annotated[BalanceTransactionListQuery, Query()]
                                    ) -> Response:
    items, more = await balances.list_balance_transactions(
        deps.kassa(request), merchant_id=caller.merchant_id, limit=q.limit,
        starting_after=q.starting_after, ending_before=q.ending_before, type=q.type)
    return deps.list_response("/v1/balance_transactions", items, more)


@router.get("/v1/balance_transactions/{bt_id}",
            responses=openapi.ok(responses.BalanceTransactionObject))
async def retrieve_balance_transaction(request: Request, bt_id: str) -> Response:
    caller = await deps.authenticate(request)
    bt = await balances.retrieve_balance_transaction(deps.kassa(request),
                                                     merchant_id=caller.merchant_id, bt_id=bt_id)
    if bt is None:
        raise NotFound(f"No such balance transaction: '{bt_id}'", param="id")
    return deps.respond(bt)
