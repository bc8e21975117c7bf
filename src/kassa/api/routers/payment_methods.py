"""/v1/payment_methods/{id} on the API: retrieve a card the vault tokenised (cards are
created at the vault, ``POST /v1/payment_methods`` on its own port)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kassa.api import openapi, responses, routing
from kassa.services import payment_methods

router = APIRouter(prefix="/v1/payment_methods", tags=["payment_methods"],
                   responses=openapi.V1_ERRORS)


@router.get("/{payment_method_id}", responses=openapi.ok(responses.PaymentMethodObject))
async def retrieve_payment_method(request: Request, payment_method_id: str) -> Response:
    return await routing.retrieve(request, payment_methods.retrieve,
                                  payment_method_id=payment_method_id)
