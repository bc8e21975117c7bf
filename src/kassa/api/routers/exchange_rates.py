"""/v1/exchange_rates/{currency}: Stripe's exchange rate object — the usable rates kassa
holds from that currency (domain/fx.py), as JSON numbers like Stripe's."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kassa.api import openapi, responses, routing
from kassa.domain import intent_fields
from kassa.services import fx
from kassa.services.context import Kassa

router = APIRouter(tags=["exchange_rates"], responses=openapi.V1_ERRORS)


class ExchangeRateObject(responses._Open):
    id: str
    object: Literal["exchange_rate"]
    rates: dict[str, float]


async def _exchange_rate(kassa: Kassa, *, merchant_id: str, currency: str
                         ) -> dict[str, Any]:
    return await fx.exchange_rate(kassa, currency=intent_fields.currency(currency))


@router.get("/v1/exchange_rates/{currency}", responses=openapi.ok(ExchangeRateObject))
async def retrieve_exchange_rate(request: Request, currency: str) -> Response:
    return await routing.retrieve(request, _exchange_rate, currency=currency)
