"""The one place where errors become Stripe-shaped HTTP responses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson
from pydantic import ValidationError

from kassa import request_context
from kassa.domain.errors import (
    AmountError,
    CardError,
    ConcurrentModification,
    IdempotencyError,
    IdempotencyInFlight,
    IllegalTransition,
    InvalidRequest,
    KassaError,
    NotFound,
)


class AuthenticationError(KassaError):
    code = "api_key_invalid"


class PermissionDenied(KassaError):
    code = "secret_key_required"


class RouteNotFound(KassaError):
    code = "resource_missing"


class RequestTooLarge(KassaError):
    code = "request_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body is larger than the limit of {limit} bytes.")


class RequestTimedOut(Exception):
    """No answer within the API's deadline (the request may still complete)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no answer within {seconds} s")
        self.seconds = seconds


RETRY_AFTER_SECONDS = 2  # a database restart or failover is usually over by then

# Errors that say the database cannot be reached right now (as opposed to refusing a
# statement): the connection failed or was lost (class 08), the server is shutting down,
# starting up or out of connection slots, or the socket itself failed or timed out.
_UNAVAILABLE = (asyncpg.PostgresConnectionError, asyncpg.OperatorInterventionError,
                asyncpg.TooManyConnectionsError, OSError, TimeoutError)


def database_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, _UNAVAILABLE):
        return True
    # asyncpg's own words for a connection the pool can no longer use
    return isinstance(exc, asyncpg.InterfaceError) and (
        "connection is closed" in str(exc) or "pool is closing" in str(exc))


def headers_for(exc: BaseException) -> dict[str, str]:
    """Response headers an error answer carries besides its body."""
    if isinstance(exc, RequestTooLarge):
        return {"Connection": "close"}  # the rest of the body is not read: start afresh
    if isinstance(exc, RequestTimedOut) or (not isinstance(exc, KassaError)
                                            and database_unavailable(exc)):
        return {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return {}


# The error codes Stripe defines (stripe-node's ErrorCode union, from Stripe's OpenAPI spec)
# that kassa answers with: each has its page under DOC_URL. kassa's own codes (timeout,
# parameter_invalid, psp_refused, ...) have none, so they carry no doc_url, as a code Stripe
# does not document carries none there.
STRIPE_CODES = frozenset({
    "amount_too_large", "amount_too_small", "api_key_expired", "authentication_required",
    "card_declined", "charge_already_captured", "charge_already_refunded", "charge_disputed",
    "charge_expired_for_capture", "charge_not_refundable", "email_invalid", "expired_card",
    "idempotency_key_in_use", "incorrect_cvc", "incorrect_number", "insufficient_funds",
    "invalid_charge_amount", "invalid_cvc", "invalid_expiry_month", "invalid_expiry_year",
    "invalid_number", "livemode_mismatch", "lock_timeout", "parameter_invalid_empty",
    "parameter_invalid_integer", "parameter_invalid_string_blank",
    "parameter_invalid_string_empty", "parameter_missing", "parameter_unknown",
    "parameters_exclusive", "payment_intent_action_required",
    "payment_intent_authentication_failure", "payment_intent_invalid_parameter",
    "payment_intent_payment_attempt_failed", "payment_intent_unexpected_state",
    "payment_method_unexpected_state", "processing_error", "rate_limit",
    "refund_disputed_payment", "resource_already_exists", "resource_missing",
    "secret_key_required", "testmode_charges_only", "url_invalid",
})
DOC_URL = "https://stripe.com/docs/error-codes/"


def doc_url(code: str | None) -> str | None:
    """Stripe's page for a code it defines: ``…/error-codes/resource-missing``."""
    return DOC_URL + code.replace("_", "-") if code in STRIPE_CODES and code else None


def error_body(type_: str, message: str, *, code: str | None = None, param: str | None = None,
               decline_code: str | None = None, **extra: Any) -> dict[str, Any]:
    err: dict[str, Any] = {"type": type_, "message": message}
    if code:
        err["code"] = code
        err["doc_url"] = doc_url(code)
    if param:
        err["param"] = param
    if decline_code:
        err["decline_code"] = decline_code
    ctx = request_context.current()
    if ctx is not None and ctx.merchant_id is not None:  # a merchant's error is logged
        err["request_log_url"] = ctx.log_url
    err.update(extra)
    return {"error": {k: v for k, v in err.items() if v is not None}}


def for_exception(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """Status and body for a domain error (order matters: subclasses first)."""
    if isinstance(exc, CardError):
        return 402, error_body("card_error", exc.message, code=exc.code,
                               decline_code=exc.decline_code, payment_intent=exc.payment_intent)
    if isinstance(exc, IdempotencyInFlight):
        return 409, error_body("idempotency_error", exc.message, code=exc.code, param=exc.param)
    if isinstance(exc, IdempotencyError):
        # Stripe's answer to a key reused with other parameters has a type and no code
        return 400, error_body("idempotency_error", exc.message)
    if isinstance(exc, NotFound | RouteNotFound):
        return 404, error_body("invalid_request_error", exc.message, code="resource_missing",
                               param=exc.param)
    if isinstance(exc, AuthenticationError):
        return 401, error_body("invalid_request_error", exc.message, code=exc.code)
    if isinstance(exc, PermissionDenied):
        return 403, error_body("invalid_request_error", exc.message, code=exc.code)
    if isinstance(exc, RequestTooLarge):
        return 413, error_body("invalid_request_error", exc.message, code=exc.code)
    if isinstance(exc, ConcurrentModification):
        return 409, error_body("invalid_request_error", exc.message, code=exc.code)
    if isinstance(exc, IllegalTransition | AmountError | InvalidRequest):
        return 400, error_body("invalid_request_error", exc.message, code=exc.code,
                               param=exc.param)
    if isinstance(exc, ValidationError):
        return 400, validation_body(exc.errors())
    if isinstance(exc, KassaError):
        return 400, error_body("invalid_request_error", exc.message, code=exc.code,
                               param=exc.param)
    if isinstance(exc, RequestTimedOut):
        return 503, error_body("api_error", f"The request was not answered within "
                               f"{exc.seconds:g} s and may still complete; retry it with the "
                               "same Idempotency-Key to learn its outcome.", code="timeout")
    if database_unavailable(exc):
        return 503, error_body("api_error", "The service is temporarily unavailable (its "
                               "database cannot be reached); retry the request with the same "
                               "Idempotency-Key.", code="service_unavailable")
    return 500, error_body("api_error", "An internal error occurred; the request may be retried "
                           "with the same Idempotency-Key.")


def validation_body(problems: Sequence[Any]) -> dict[str, Any]:
    """The first of pydantic's (or FastAPI's, located in "query"/"path") problems."""
    first = problems[0]
    loc = [str(p) for p in first["loc"]]
    if len(loc) > 1 and loc[0] in ("query", "path", "header", "body"):
        loc = loc[1:]
    param = loc[0] + "".join(f"[{p}]" for p in loc[1:]) if loc else None
    if first["type"] == "extra_forbidden":
        return error_body("invalid_request_error", f"Received unknown parameter: {param}",
                          code="parameter_unknown", param=param)
    if first["type"] == "missing":
        return error_body("invalid_request_error", f"Missing required param: {param}.",
                          code="parameter_missing", param=param)
    if first["type"].startswith("parameter_invalid_"):  # schemas.py names Stripe's code
        return error_body("invalid_request_error", first["msg"], code=first["type"],
                          param=param)
    given = first.get("input")
    if first["type"] == "string_too_short" and isinstance(given, str):
        if given == "":
            return error_body(
                "invalid_request_error",
                f"You passed an empty string for '{param}'. We assume empty values are an "
                f"attempt to unset a parameter; however '{param}' cannot be unset. You should "
                f"remove '{param}' from your request or supply a non-empty value.",
                code="parameter_invalid_empty", param=param)
        if not given.strip():
            return error_body("invalid_request_error", f"Invalid {param}: it must not be "
                              "blank.", code="parameter_invalid_string_blank", param=param)
    msg = first["msg"].removeprefix("Value error, ")
    return error_body("invalid_request_error", f"Invalid {param}: {msg}",
                      code="parameter_invalid", param=param)


def render(result: object) -> tuple[int, bytes]:
    """(status, body bytes) for a result object or an error — also what idempotency stores."""
    if isinstance(result, BaseException):
        status, body = for_exception(result)
        return status, orjson.dumps(body)
    return 200, orjson.dumps(result)
