"""/v1/balance and /v1/balance_transactions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kassa.api import deps, openapi, responses, routing
from kassa.api.schemas import BalanceQuery, BalanceTransactionListQuery
from kassa.domain.errors import NotFound
from kassa.services import balances
from kassa.services.context import Kassa

router = APIRouter(tags=["balance"], responses=openapi.V1_ERRORS)


@router.get("/v1/balance", responses=openapi.ok(responses.BalanceObject),
            openapi_extra=openapi.query(BalanceQuery))
async def retrieve_balance(request: Request, caller: deps.SecretKey,
                           q: Annotated[BalanceQuery, deps.query(BalanceQuery)]) -> Response:
    paths = routing.expansions(request, q.expand)
    obj = await balances.balance(deps.kassa(request), merchant_id=caller.merchant_id,
                                 as_of=q.as_of)
    return await routing.answer_expanded(request, caller.merchant_id, obj, paths)


@router.get("/v1/balance_transactions",
            responses=openapi.ok(responses.ListOf[responses.BalanceTransactionObject]),
            openapi_extra=openapi.query(BalanceTransactionListQuery))
async def list_balance_transactions(request: Request, caller: deps.SecretKey,
                                    q: Annotated[BalanceTransactionListQuery,
                                                 deps.query(BalanceTransactionListQuery)]
                                    ) -> Response:
    return await routing.list_page(request, caller, q, "/v1/balance_transactions",
                                   balances.list_balance_transactions, type=q.type,
                                   source=q.source, currency=q.currency, payout=q.payout)


async def _balance_transaction(kassa: Kassa, *, merchant_id: str, bt_id: str
                               ) -> dict[str, Any]:
    bt = await balances.retrieve_balance_transaction(kassa, merchant_id=merchant_id,
                                                     bt_id=bt_id)
    if bt is None:
        raise NotFound(f"No such balance transaction: '{bt_id}'", param="id")
    return bt


@router.get("/v1/balance_transactions/{bt_id}",
            responses=openapi.ok(responses.BalanceTransactionObject))
async def retrieve_balance_transaction(request: Request, bt_id: str) -> Response:
    return await routing.retrieve(request, _balance_transaction, bt_id=bt_id)
