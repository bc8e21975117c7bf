"""/v1/payment_methods on the API: retrieve a card the vault tokenised, update it, attach it
to a customer or detach it, list a customer's (cards are created at the vault,
``POST /v1/payment_methods`` on its own port: the card number never reaches this process)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kassa.api import deps, openapi, responses, routing
from kassa.api.customer_schemas import (
    PaymentMethodAttach,
    PaymentMethodDetach,
    PaymentMethodListQuery,
    PaymentMethodUpdate,
)
from kassa.domain.errors import InvalidRequest
from kassa.services import payment_methods, saved_cards

PREFIX = "/v1/payment_methods"
router = APIRouter(prefix=PREFIX, tags=["payment_methods"], responses=openapi.V1_ERRORS)
PAYMENT_METHOD = openapi.ok(responses.PaymentMethodObject)


@router.get("", responses=openapi.ok(responses.ListOf[responses.PaymentMethodObject]),
            openapi_extra=openapi.query(PaymentMethodListQuery))
async def list_payment_methods(request: Request, caller: deps.SecretKey,
                               q: Annotated[PaymentMethodListQuery,
                                            deps.query(PaymentMethodListQuery)]) -> Response:
    """A customer's saved cards (``customer`` is required: kassa lists saved cards only)."""
    if q.customer is None:
        raise InvalidRequest("Missing required param: customer.", param="customer",
                             code="parameter_missing")
    return await routing.list_page(request, caller, q, PREFIX, saved_cards.list_for_customer,
                                   customer=q.customer)


@router.get("/{payment_method_id}", responses=PAYMENT_METHOD)
async def retrieve_payment_method(request: Request, payment_method_id: str) -> Response:
    return await routing.retrieve(request, payment_methods.retrieve,
                                  payment_method_id=payment_method_id)


@router.post("/{payment_method_id}", responses=PAYMENT_METHOD,
             openapi_extra=openapi.body(PaymentMethodUpdate))
async def update_payment_method(request: Request, payment_method_id: str) -> Response:
    """Billing details, metadata and the card's expiry, of a card saved to a customer."""
    return await routing.post(request, PaymentMethodUpdate, saved_cards.update,
                              lambda body: dict(
                                  billing_details=body.billing(), metadata=body.metadata,
                                  metadata_given="metadata" in body.model_fields_set,
                                  exp_month=None if body.card is None else body.card.exp_month,
                                  exp_year=None if body.card is None else body.card.exp_year),
                              payment_method_id=payment_method_id)


@router.post("/{payment_method_id}/attach", responses=PAYMENT_METHOD,
             openapi_extra=openapi.body(PaymentMethodAttach))
async def attach_payment_method(request: Request, payment_method_id: str) -> Response:
    return await routing.post(request, PaymentMethodAttach, saved_cards.attach,
                              lambda body: dict(customer=body.customer),
                              payment_method_id=payment_method_id)


@router.post("/{payment_method_id}/detach", responses=PAYMENT_METHOD,
             openapi_extra=openapi.body(PaymentMethodDetach))
async def detach_payment_method(request: Request, payment_method_id: str) -> Response:
    return await routing.post(request, PaymentMethodDetach, saved_cards.detach,
                              payment_method_id=payment_method_id)
