"""/v1/payment_intents: create, retrieve, list, confirm, capture, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from kassa.api import deps, openapi, responses, schemas
from kassa.services import payments

router = APIRouter(prefix="/v1/payment_intents", tags=["payment_intents"],
                   responses=openapi.V1_ERRORS)
# what a POST that may charge the card answers
CHARGED = {**openapi.ok(responses.PaymentIntentObject), **openapi.errors(402)}


@router.post("", responses=CHARGED, openapi_extra=openapi.body(schemas.PaymentIntentCreate))
async def create_payment_intent(request: Request) -> Response:
    caller = await deps.authenticate(request)
    body, raw = await deps.params(request, schemas.PaymentIntentCreate)
    capture_method = "automatic" if body.capture_method == "automatic_async" else \
        body.capture_method
    return await deps.run_post(request, caller, raw, lambda idem: payments.create(
        deps.kassa(request), merchant_id=caller.merchant_id, amount=body.amount,
        currency=body.currency, capture_method=capture_method,
        payment_method=body.payment_method, description=body.description,
        metadata=body.metadata, confirm=body.confirm, return_url=body.return_url,
        idempotency=idem))


@router.get("", responses=openapi.ok(responses.ListOf[responses.PaymentIntentObject]))
async def list_payment_intents(request: Request, caller: deps.SecretKey,
                               q: Annotated[schemas.ListQuery, Query()]) -> Response:
    items, more = await payments.list_(deps.kassa(request), merchant_id=caller.merchant_id,
                                       limit=q.limit, starting_after=q.starting_after,
                                       ending_before=q.ending_before)
    return deps.list_response("/v1/payment_intents", items, more)


@router.get("/{payment_id}", responses=openapi.ok(responses.PaymentIntentObject))
async def retrieve_payment_intent(request: Request, payment_id: str) -> Response:
    caller = await deps.authenticate(request)
    return deps.respond(await payments.retrieve(
        deps.kassa(request), merchant_id=caller.merchant_id, payment_id=payment_id))


@router.post("/{payment_id}/confirm", responses=CHARGED,
             openapi_extra=openapi.body(schemas.PaymentIntentConfirm))
async def confirm_payment_intent(request: Request, payment_id: str) -> Response:
    caller = await deps.authenticate(request)
    body, raw = await deps.params(request, schemas.PaymentIntentConfirm)
    return await deps.run_post(request, caller, raw, lambda idem: payments.confirm(
        deps.kassa(request), merchant_id=caller.merchant_id, payment_id=payment_id,
        payment_method=body.payment_method, return_url=body.return_url, idempotency=idem))


@router.post("/{payment_id}/capture", responses=CHARGED,
             openapi_extra=openapi.body(schemas.PaymentIntentCapture))
async def capture_payment_intent(request: Request, payment_id: str) -> Response:
    caller = await deps.authenticate(request)
    body, raw = await deps.params(request, schemas.PaymentIntentCapture)
    return await deps.run_post(request, caller, raw, lambda idem: payments.capture(
        deps.kassa(request), merchant_id=caller.merchant_id, payment_id=payment_id,
        amount_to_capture=body.amount_to_capture, idempotency=idem))


@router.post("/{payment_id}/cancel", responses=CHARGED,
             openapi_extra=openapi.body(schemas.PaymentIntentCancel))
async def cancel_payment_intent(request: Request, payment_id: str) -> Response:
    caller = await deps.authenticate(request)
    body, raw = await deps.params(request, schemas.PaymentIntentCancel)
    return await deps.run_post(request, caller, raw, lambda idem: payments.cancel(
        deps.kassa(request), merchant_id=caller.merchant_id, payment_id=payment_id,
        cancellation_reason=body.cancellation_reason, idempotency=idem))
