"""/v1/payment_intents: create, retrieve, list, search, confirm, capture, cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kassa import representations
from kassa.api import deps, openapi, responses, routing, schemas
from kassa.services import payments

router = APIRouter(prefix="/v1/payment_intents", tags=["payment_intents"],
                   responses=openapi.V1_ERRORS)
# what a POST that may charge the card answers
CHARGED = {**openapi.ok(responses.PaymentIntentObject), **openapi.errors(402)}


def _create_arguments(body: schemas.PaymentIntentCreate) -> dict[str, Any]:
    capture_method = "automatic" if body.capture_method == "automatic_async" else \
        body.capture_method
    return dict(amount=body.amount, currency=body.currency, capture_method=capture_method,
                payment_method=body.payment_method, description=body.description,
                metadata=body.metadata, confirm=body.confirm, return_url=body.return_url)


@router.post("", responses=CHARGED, openapi_extra=openapi.body(schemas.PaymentIntentCreate))
async def create_payment_intent(request: Request) -> Response:
    return await routing.post(request, schemas.PaymentIntentCreate, payments.create,
                              _create_arguments)


@router.get("", responses=openapi.ok(responses.ListOf[responses.PaymentIntentObject]),
            openapi_extra=openapi.query(schemas.ListQuery))
async def list_payment_intents(request: Request, caller: deps.SecretKey,
                               q: Annotated[schemas.ListQuery,
                                            deps.query(schemas.ListQuery)]) -> Response:
    return await routing.list_page(request, caller, q, "/v1/payment_intents", payments.list_)


@router.get("/search", responses=openapi.ok(responses.SearchResultOf[
    responses.PaymentIntentObject]),
            openapi_extra=openapi.query(schemas.SearchQuery))
async def search_payment_intents(request: Request, caller: deps.SecretKey,
                                 q: Annotated[schemas.SearchQuery,
                                              deps.query(schemas.SearchQuery)]) -> Response:
    """Stripe's search query language over amount, created, currency, metadata and status."""
    items, next_page = await payments.search(deps.kassa(request),
                                             merchant_id=caller.merchant_id, query=q.query,
                                             limit=q.limit, page=q.page)
    return deps.respond(representations.search_result("/v1/payment_intents/search", items,
                                                      next_page))


@router.get("/{payment_id}", responses=openapi.ok(responses.PaymentIntentObject))
async def retrieve_payment_intent(request: Request, payment_id: str) -> Response:
    return await routing.retrieve(request, payments.retrieve, payment_id=payment_id)


@router.post("/{payment_id}/confirm", responses=CHARGED,
             openapi_extra=openapi.body(schemas.PaymentIntentConfirm))
async def confirm_payment_intent(request: Request, payment_id: str) -> Response:
    return await routing.post(request, schemas.PaymentIntentConfirm, payments.confirm,
                              lambda body: dict(payment_method=body.payment_method,
                                                return_url=body.return_url),
                              payment_id=payment_id)


@router.post("/{payment_id}/capture", responses=CHARGED,
             openapi_extra=openapi.body(schemas.PaymentIntentCapture))
async def capture_payment_intent(request: Request, payment_id: str) -> Response:
    return await routing.post(request, schemas.PaymentIntentCapture, payments.capture,
                              lambda body: dict(amount_to_capture=body.amount_to_capture),
                              payment_id=payment_id)


@router.post("/{payment_id}/cancel", responses=CHARGED,
             openapi_extra=openapi.body(schemas.PaymentIntentCancel))
async def cancel_payment_intent(request: Request, payment_id: str) -> Response:
    return await routing.post(request, schemas.PaymentIntentCancel, payments.cancel,
                              lambda body: dict(cancellation_reason=body.cancellation_reason),
                              payment_id=payment_id)
