"""/v1/customers: create, retrieve, update, delete, list, search; a customer's saved cards."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kassa import representations
from kassa.api import deps, openapi, responses, routing
from kassa.api.customer_schemas import (
    CustomerCreate,
    CustomerListQuery,
    CustomerPaymentMethodListQuery,
    CustomerUpdate,
)
from kassa.api.schemas import Params, SearchQuery
from kassa.services import customers, expand, saved_cards

PREFIX = "/v1/customers"
router = APIRouter(prefix=PREFIX, tags=["customers"], responses=openapi.V1_ERRORS)
CUSTOMER = openapi.ok(responses.CustomerObject)


@router.post("", responses=CUSTOMER, openapi_extra=openapi.body(CustomerCreate))
async def create_customer(request: Request) -> Response:
    return await routing.post(request, CustomerCreate, customers.create, lambda body: dict(
        email=body.email, name=body.name, phone=body.phone, description=body.description,
        metadata=body.metadata, payment_method=body.payment_method,
        default_payment_method=None if body.invoice_settings is None
        else body.invoice_settings.default_payment_method or None))


@router.get("", responses=openapi.ok(responses.ListOf[responses.CustomerObject]),
            openapi_extra=openapi.query(CustomerListQuery))
async def list_customers(request: Request, caller: deps.SecretKey,
                         q: Annotated[CustomerListQuery, deps.query(CustomerListQuery)]
                         ) -> Response:
    return await routing.list_page(request, caller, q, PREFIX, customers.list_, email=q.email)


@router.get("/search", responses=openapi.ok(responses.SearchResultOf[
    responses.CustomerObject]), openapi_extra=openapi.query(SearchQuery))
async def search_customers(request: Request, caller: deps.SecretKey,
                           q: Annotated[SearchQuery, deps.query(SearchQuery)]) -> Response:
    """Stripe's search query language over created, email, name, phone and metadata."""
    expand.check("search_result", q.expand, item="customer")
    items, next_page = await customers.search(deps.kassa(request),
                                              merchant_id=caller.merchant_id, query=q.query,
                                              limit=q.limit, page=q.page)
    return deps.respond(representations.search_result(f"{PREFIX}/search", items, next_page))


@router.get("/{customer_id}", responses=CUSTOMER)
async def retrieve_customer(request: Request, customer_id: str) -> Response:
    return await routing.retrieve(request, customers.retrieve, customer_id=customer_id)


@router.post("/{customer_id}", responses=CUSTOMER, openapi_extra=openapi.body(CustomerUpdate))
async def update_customer(request: Request, customer_id: str) -> Response:
    return await routing.post(request, CustomerUpdate, customers.update,
                              lambda body: dict(changes=body.changes()),
                              customer_id=customer_id)


@router.delete("/{customer_id}", responses=openapi.ok(responses.DeletedCustomer),
               openapi_extra=openapi.idempotent())
async def delete_customer(request: Request, customer_id: str) -> Response:
    return await routing.post(request, Params, customers.delete, customer_id=customer_id)


@router.get("/{customer_id}/payment_methods",
            responses=openapi.ok(responses.ListOf[responses.PaymentMethodObject]),
            openapi_extra=openapi.query(CustomerPaymentMethodListQuery))
async def list_customer_payment_methods(
        request: Request, caller: deps.SecretKey, customer_id: str,
        q: Annotated[CustomerPaymentMethodListQuery,
                     deps.query(CustomerPaymentMethodListQuery)]) -> Response:
    return await routing.list_page(request, caller, q, f"{PREFIX}/{customer_id}/payment_methods",
                                   saved_cards.list_for_customer, customer=customer_id,
                                   param="id")
