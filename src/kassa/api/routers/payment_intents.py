"""/v1/payment_intents: create, retrieve, update, list, search, confirm, capture, cancel.

Retrieve and confirm also take a publishable key with the intent's ``client_secret`` (what
Stripe.js does in the customer's browser); it sees Stripe's reduced view of the intent."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from kassa import representations
from kassa.api import deps, openapi, responses, routing, schemas
from kassa.domain.errors import CardError
from kassa.services import expand, payments

router = APIRouter(prefix="/v1/payment_intents", tags=["payment_intents"],
                   responses=openapi.V1_ERRORS)
# what a POST that may charge the card answers
CHARGED = {**openapi.ok(responses.PaymentIntentObject), **openapi.errors(402)}


def _create_arguments(body: schemas.PaymentIntentCreate) -> dict[str, Any]:
    return dict(amount=body.amount, currency=body.currency, capture_method=body.capture_method,
                payment_method=body.payment_method, description=body.description,
                metadata=body.metadata, confirm=body.confirm, return_url=body.return_url,
                confirmation_method=body.confirmation_method, customer=body.customer,
                off_session=body.off_session, fields=body.intent_fields())


def _publishable(response: Response) -> Response:
    """A publishable caller's answer: the reduced view, replays and declines included."""
    body = representations.publishable_view(orjson.loads(response.body))
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    return Response(orjson.dumps(body), status_code=response.status_code,
                    media_type=deps.JSON, headers=headers)


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
    paths = expand.check("search_result", q.expand, item="payment_intent")
    k = deps.kassa(request)
    items, next_page = await payments.search(k, merchant_id=caller.merchant_id,
                                             query=q.query, limit=q.limit, page=q.page)
    return deps.respond(await expand.expand(
        k, merchant_id=caller.merchant_id,
        obj=representations.search_result("/v1/payment_intents/search", items, next_page),
        paths=paths))


@router.get("/{payment_id}", responses=openapi.ok(responses.PaymentIntentObject))
async def retrieve_payment_intent(request: Request, payment_id: str,
                                  client_secret: Annotated[str | None, Query(max_length=255)]
                                  = None) -> Response:
    caller = await deps.authenticate(request, secret=False)
    k = deps.kassa(request)
    if caller.kind == "publishable":  # the reduced view: nothing to expand
        return deps.respond(await payments.retrieve_with_client_secret(
            k, merchant_id=caller.merchant_id, payment_id=payment_id,
            client_secret=client_secret))
    paths = routing.query_expansions(request)
    return await routing.answer_expanded(
        request, caller.merchant_id,
        await payments.retrieve(k, merchant_id=caller.merchant_id, payment_id=payment_id),
        paths)


@router.post("/{payment_id}", responses=openapi.ok(responses.PaymentIntentObject),
             openapi_extra=openapi.body(schemas.PaymentIntentUpdate))
async def update_payment_intent(request: Request, payment_id: str) -> Response:
    """Amount, currency, card and capture while requires_payment_method or
    requires_confirmation; description, metadata, receipt_email, shipping after too."""
    return await routing.post(request, schemas.PaymentIntentUpdate, payments.update,
                              lambda body: dict(changes=body.changes()),
                              payment_id=payment_id)


@router.post("/{payment_id}/confirm", responses=CHARGED,
             openapi_extra=openapi.body(schemas.PaymentIntentConfirm))
async def confirm_payment_intent(request: Request, payment_id: str) -> Response:
    caller = await deps.authenticate(request, secret=False)
    body, raw = await deps.params(request, schemas.PaymentIntentConfirm)
    k = deps.kassa(request)
    publishable = caller.kind == "publishable"
    # a publishable caller gets the reduced view, which has nothing to expand
    paths = [] if publishable else routing.expansions(request, body.expand)
    try:
        response = await routing.run_post_expanded(
            request, caller, raw, lambda idem: payments.confirm(
                k, merchant_id=caller.merchant_id, payment_id=payment_id,
                payment_method=body.payment_method, return_url=body.return_url,
                client_secret=body.client_secret, publishable=publishable,
                off_session=body.off_session, idempotency=idem),
            paths)
    except CardError as exc:
        if not publishable:
            raise
        response = deps.respond(exc)
    return _publishable(response) if publishable else response


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
