"""/v1/payouts (create, retrieve, list, cancel) and the merchant's bank accounts
(/v1/accounts/{account}/external_accounts), in Stripe's shapes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import Field

from kassa.api import deps, openapi, responses, routing
from kassa.api.schemas import (
    Filter,
    Id,
    Integer,
    ListQuery,
    Metadata,
    Params,
    Range,
    Text,
)
from kassa.services import payout_destinations, payouts

router = APIRouter(tags=["payouts"], responses=openapi.V1_ERRORS)


class PayoutObject(responses._Open):
    id: str
    object: Literal["payout"]
    amount: int
    currency: str
    status: str
    arrival_date: int


class BankAccountObject(responses._Open):
    id: str
    object: Literal["bank_account"]
    country: str
    currency: str
    last4: str


class PayoutCreate(Params):
    amount: Integer
    currency: Annotated[str, Field(min_length=3, max_length=3)]
    description: Text | None = None
    metadata: Metadata | None = None
    statement_descriptor: Annotated[str, Field(max_length=22)] | None = None
    method: Literal["standard"] = "standard"  # instant payouts need card destinations


class PayoutCancel(Params):
    pass


class PayoutListQuery(ListQuery):
    status: Filter | None = None
    arrival_date: Range | None = None


BankAccountField = Annotated[str, Field(max_length=140)]


class BankAccountHash(Params):
    object: Literal["bank_account"] = "bank_account"
    country: Annotated[str, Field(min_length=2, max_length=2)]
    currency: Annotated[str, Field(min_length=3, max_length=3)]
    account_holder_name: BankAccountField
    account_number: Annotated[str, Field(max_length=64)]
    routing_number: Annotated[str, Field(max_length=32)] | None = None
    account_type: Annotated[str, Field(max_length=16)] | None = None  # JP: futsu or toza


class ExternalAccountCreate(Params):
    external_account: BankAccountHash
    metadata: Metadata | None = None


@router.post("/v1/payouts", responses=openapi.ok(PayoutObject),
             openapi_extra=openapi.body(PayoutCreate))
async def create_payout(request: Request) -> Response:
    return await routing.post(request, PayoutCreate, payouts.create_payout, lambda b: dict(
        amount=b.amount, currency=b.currency, description=b.description, metadata=b.metadata,
        statement_descriptor=b.statement_descriptor))


@router.get("/v1/payouts", responses=openapi.ok(responses.ListOf[PayoutObject]),
            openapi_extra=openapi.query(PayoutListQuery))
async def list_payouts(request: Request, caller: deps.SecretKey,
                       q: Annotated[PayoutListQuery, deps.query(PayoutListQuery)]) -> Response:
    return await routing.list_page(request, caller, q, "/v1/payouts", payouts.list_payouts,
                                   status=q.status, arrival_date=q.arrival_date)


@router.get("/v1/payouts/{payout_id}", responses=openapi.ok(PayoutObject))
async def retrieve_payout(request: Request, payout_id: str) -> Response:
    return await routing.retrieve(request, payouts.retrieve_payout, payout_id=payout_id)


@router.post("/v1/payouts/{payout_id}/cancel", responses=openapi.ok(PayoutObject),
             openapi_extra=openapi.body(PayoutCancel))
async def cancel_payout(request: Request, payout_id: str) -> Response:
    return await routing.post(request, PayoutCancel, payouts.cancel_payout,
                              payout_id=payout_id)


@router.post("/v1/accounts/{account_id}/external_accounts",
             responses=openapi.ok(BankAccountObject),
             openapi_extra=openapi.body(ExternalAccountCreate))
async def create_external_account(request: Request, account_id: Id) -> Response:
    kassa = deps.kassa(request)
    return await routing.post(
        request, ExternalAccountCreate, payout_destinations.add_bank_account,
        lambda b: dict(external_account=b.external_account.model_dump(exclude_none=True),
                       metadata=b.metadata), account_id=account_id,
        fingerprinted=lambda raw: payout_destinations.idempotency_params(kassa, raw))


async def _bank_accounts(kassa: Any, *, merchant_id: str, account_id: str) -> dict[str, Any]:
    items = await payout_destinations.list_bank_accounts(kassa, merchant_id=merchant_id,
                                                         account_id=account_id)
    return {"object": "list", "url": f"/v1/accounts/{account_id}/external_accounts",
            "has_more": False, "data": items}


@router.get("/v1/accounts/{account_id}/external_accounts",
            responses=openapi.ok(responses.ListOf[BankAccountObject]))
async def list_external_accounts(request: Request, account_id: str) -> Response:
    return await routing.retrieve(request, _bank_accounts, account_id=account_id)
