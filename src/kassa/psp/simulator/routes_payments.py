"""The acquirer's payment API under ``/v1``: authorize, capture, void, refund, and reading
an authorization or the result of an operation by its idempotency key (README.md)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kassa.domain.money import MAX_AMOUNT
from kassa.psp.simulator.books import InvalidRequest
from kassa.psp.simulator.parsing import (
    amount_change,
    boolean,
    currency,
    idempotency_key,
    integer,
    json_body,
    optional_string,
)
from kassa.psp.simulator.responses import error_response, json_response, refuses_invalid
from kassa.psp.simulator.runtime import simulator_of


@refuses_invalid
async def authorize(request: Request) -> Response:
    body = await json_body(request)
    key = idempotency_key(body)
    token = body.get("token")
    if token is not None:  # one of the simulator's own tokens (tokens.py) instead of a card
        if not isinstance(token, str) or "card" in body:
            raise InvalidRequest("token must be a string, given instead of card", "token")
        stored = simulator_of(request).tokens.charge(token)
        number, exp_month, exp_year, cvc = (stored.number, stored.exp_month,
                                            stored.exp_year, None)
    else:
        card = body.get("card")
        if not isinstance(card, dict):
            raise InvalidRequest("card must be an object", "card")
        number = card.get("number")
        if not isinstance(number, str) or not number:
            raise InvalidRequest("card.number must be a string", "card.number")
        exp_month = integer(card, "exp_month", minimum=1, maximum=12, param="card.exp_month")
        exp_year = integer(card, "exp_year", minimum=1, maximum=9999, param="card.exp_year")
        cvc = optional_string(card, "cvc", param="card.cvc")
    amount = integer(body, "amount", minimum=1, maximum=MAX_AMOUNT)
    currency_code = currency(body)
    capture = boolean(body, "capture")
    merchant_id = body.get("merchant_id")
    if not isinstance(merchant_id, str) or not merchant_id:
        raise InvalidRequest("merchant_id must be a non-empty string", "merchant_id")
    description = optional_string(body, "description")
    return_url = optional_string(body, "return_url")
    off_session = boolean(body, "off_session", default=False)
    simulator = simulator_of(request)
    return await simulator.mutate(lambda: simulator.acquirer.authorize(
        idempotency_key=key, amount=amount, currency=currency_code, number=number,
        exp_month=exp_month, exp_year=exp_year, cvc=cvc, capture=capture,
        merchant_id=merchant_id, description=description, return_url=return_url,
        base_url=lambda: str(request.base_url).rstrip("/"), off_session=off_session,
    ))


@refuses_invalid
async def capture(request: Request) -> Response:
    key, amount, currency_code = amount_change(await json_body(request))
    simulator = simulator_of(request)
    chaos = simulator.chaos  # its config is read when the capture runs, after any latency
    return await simulator.mutate(lambda: simulator.acquirer.capture(
        idempotency_key=key, authorization_id=request.path_params["id"], amount=amount,
        currency=currency_code, pending=chaos.config.capture_mode == "pending",
        validity_s=chaos.config.authorization_validity_s))


@refuses_invalid
async def void(request: Request) -> Response:
    key = idempotency_key(await json_body(request))
    simulator = simulator_of(request)
    return await simulator.mutate(lambda: simulator.acquirer.void(
        idempotency_key=key, authorization_id=request.path_params["id"]))


@refuses_invalid
async def refund(request: Request) -> Response:
    key, amount, currency_code = amount_change(await json_body(request))
    simulator = simulator_of(request)
    chaos = simulator.chaos
    return await simulator.mutate(lambda: simulator.acquirer.refund(
        idempotency_key=key, authorization_id=request.path_params["id"], amount=amount,
        currency=currency_code, pending=chaos.config.refund_mode == "pending"))


async def get_authorization(request: Request) -> Response:
    simulator = simulator_of(request)
    await simulator.latency()
    auth = simulator.acquirer.authorizations.get(request.path_params["id"])
    if auth is None:
        return error_response(404, "not_found", "No such authorization.")
    return json_response(auth.view())


async def get_operation(request: Request) -> Response:
    simulator = simulator_of(request)
    simulator.resume_pending()
    await simulator.latency()
    result = simulator.acquirer.operation_view(request.path_params["key"])
    if result is None:
        return error_response(404, "not_found", "No operation was received with this key.")
    return json_response(result)


ROUTES = [
    Route("/v1/authorizations", authorize, methods=["POST"]),
    Route("/v1/authorizations/{id}", get_authorization, methods=["GET"]),
    Route("/v1/authorizations/{id}/capture", capture, methods=["POST"]),
    Route("/v1/authorizations/{id}/void", void, methods=["POST"]),
    Route("/v1/authorizations/{id}/refunds", refund, methods=["POST"]),
    Route("/v1/operations/{key:path}", get_operation, methods=["GET"]),
]
