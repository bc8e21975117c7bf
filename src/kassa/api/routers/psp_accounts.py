"""/v1/psp_accounts (kassa's extension): a merchant's own Stripe, Adyen or simulator account,
named by its id in routing configurations. Credentials are write-only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from kassa.api import deps, openapi, routing
from kassa.api.responses import ListOf
from kassa.api.schemas import ListQuery, Params
from kassa.services import psp_accounts

router = APIRouter(tags=["psp_accounts"], responses=openapi.V1_ERRORS)
PREFIX = "/v1/psp_accounts"

# the shapes are checked by services/psp_accounts.py, whose 400s name the param and never
# repeat a credential's value (pydantic's messages could)
CREDENTIALS = Field(None, description="Write-only, never returned. stripe: {api_key, "
                    "webhook_secret}; adyen: {api_key, hmac_keys: [hex, …]}; simulator: "
                    "{webhook_secret}.")


class PSPAccountCreate(Params):
    psp: Any = Field(description="stripe | adyen | simulator")
    currencies: Any = Field(None, description="ISO 4217 codes the account takes: a payment "
                            "in another currency is never routed there.")
    credentials: Any = CREDENTIALS
    enabled: Any = True
    base_url: Any = Field(None, description="The PSP's API base (required for simulator; "
                          "Stripe's and Adyen's test endpoints by default).")
    merchant_account: Any = Field(None, description="Adyen's merchant account (required).")
    hold_validity_days: Any = Field(None, description="How long the PSP keeps an uncaptured "
                                    "authorisation, in days: stripe 1-7 (default 7), adyen "
                                    "1-28 (default 28), simulator 1-30. kassa voids a hold "
                                    "then.")


class PSPAccountUpdate(Params):
    currencies: Any = None
    credentials: Any = Field(None, description="Replaces the stored credentials whole "
                             "(rotation).")
    enabled: Any = None
    base_url: Any = None
    merchant_account: Any = None
    hold_validity_days: Any = None


class PSPAccountObject(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    object: Literal["psp_account"]
    psp: Literal["stripe", "adyen", "simulator"]
    enabled: bool
    currencies: list[str]
    created: int
    updated: int
    livemode: bool
    base_url: str | None
    merchant_account: str | None
    hold_validity_days: int | None
    stripe_account: str | None = Field(
        None, description="The Stripe account (acct_…) the credentials belong to; a "
                          "rotation to another account's key is refused.")


class DeletedPSPAccount(BaseModel):
    id: str
    object: Literal["psp_account"]
    deleted: Literal[True]


ACCOUNT = openapi.ok(PSPAccountObject)


def _fingerprinted(request: Request) -> Callable[[dict[str, Any]], dict[str, Any]]:
    kassa = deps.kassa(request)
    return lambda raw: psp_accounts.idempotency_params(kassa, raw)


def _fields(body: PSPAccountCreate | PSPAccountUpdate) -> dict[str, Any]:
    return dict(currencies=body.currencies, credentials=body.credentials,
                enabled=body.enabled, base_url=body.base_url,
                merchant_account=body.merchant_account,
                hold_validity_days=body.hold_validity_days)


@router.post(PREFIX, responses=ACCOUNT, openapi_extra=openapi.body(PSPAccountCreate))
async def create_psp_account(request: Request) -> Response:
    return await routing.post(request, PSPAccountCreate, psp_accounts.create,
                              lambda body: dict(psp=body.psp, **_fields(body)),
                              fingerprinted=_fingerprinted(request))


@router.get(PREFIX, responses=openapi.ok(ListOf[PSPAccountObject]),
            openapi_extra=openapi.query(ListQuery))
async def list_psp_accounts(request: Request, caller: deps.SecretKey,
                            q: Annotated[ListQuery, deps.query(ListQuery)]) -> Response:
    return await routing.list_page(request, caller, q, PREFIX, psp_accounts.list_accounts)


@router.get(PREFIX + "/{account_id}", responses=ACCOUNT)
async def retrieve_psp_account(request: Request, account_id: str) -> Response:
    return await routing.retrieve(request, psp_accounts.retrieve, account_id=account_id)


@router.post(PREFIX + "/{account_id}", responses=ACCOUNT,
             openapi_extra=openapi.body(PSPAccountUpdate))
async def update_psp_account(request: Request, account_id: str) -> Response:
    return await routing.post(request, PSPAccountUpdate, psp_accounts.update, _fields,
                              fingerprinted=_fingerprinted(request), account_id=account_id)


@router.delete(PREFIX + "/{account_id}", responses=openapi.ok(DeletedPSPAccount),
               openapi_extra=openapi.idempotent())
async def delete_psp_account(request: Request, account_id: str) -> Response:
    return await routing.post(request, Params, psp_accounts.delete, account_id=account_id)
