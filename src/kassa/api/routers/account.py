"""/v1/account: the merchant's own account, in Stripe's shape; its payout settings
(``settings[payouts][schedule][…]``) are updated with POST."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BeforeValidator, Field

from kassa.api import openapi, responses, routing
from kassa.api.schemas import Integer, Params
from kassa.domain.settlement import DEFAULT_DELAY_DAYS
from kassa.services import accounts

router = APIRouter(tags=["account"], responses=openapi.V1_ERRORS)


class AccountObject(responses._Open):
    id: str
    object: Literal["account"]


def _weekday(v: object) -> object:
    return v.lower() if isinstance(v, str) else v


def _delay_days(v: object) -> object:
    # Stripe's "minimum": the lowest delay the account may have, kassa's default for cards
    return DEFAULT_DELAY_DAYS if v == "minimum" else v


class ScheduleParams(Params):
    interval: Literal["manual", "daily", "weekly", "monthly"] | None = None
    delay_days: Annotated[Integer, Field(ge=0, le=365), BeforeValidator(_delay_days)
                          ] | None = None
    weekly_anchor: Annotated[Literal["monday", "tuesday", "wednesday", "thursday", "friday",
                                     "saturday", "sunday"],
                             BeforeValidator(_weekday)] | None = None
    monthly_anchor: Annotated[Integer, Field(ge=1, le=31)] | None = None


class PayoutSettingsParams(Params):
    schedule: ScheduleParams | None = None


class SettingsParams(Params):
    payouts: PayoutSettingsParams | None = None


class AccountUpdate(Params):
    settings: SettingsParams | None = None
    # the settlement currency (domain/fx.py); "" clears it
    default_currency: Annotated[str, Field(max_length=3)] | None = None


def _schedule(body: AccountUpdate) -> dict[str, object] | None:
    payouts = body.settings.payouts if body.settings else None
    if payouts is None or payouts.schedule is None:
        return None
    return payouts.schedule.model_dump(exclude_none=True, exclude={"expand"})


@router.get("/v1/account", responses=openapi.ok(AccountObject))
async def retrieve_account(request: Request) -> Response:
    return await routing.retrieve(request, accounts.retrieve_account)


@router.post("/v1/account", responses=openapi.ok(AccountObject),
             openapi_extra=openapi.body(AccountUpdate))
async def update_account(request: Request) -> Response:
    return await routing.post(request, AccountUpdate, accounts.update_account,
                              lambda b: dict(schedule=_schedule(b),
                                             default_currency=b.default_currency))
