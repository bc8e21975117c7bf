"""The one place where errors become Stripe-shaped HTTP responses."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

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


def error_body(type_: str, message: str, *, code: str | None = None, param: str | None = None,
               decline_code: str | None = None, **extra: Any) -> dict[str, Any]:
    err: dict[str, Any] = {"type": type_, "message": message}
    if code:
        err["code"] = code
    if param:
        err["param"] = param
    if decline_code:
        err["decline_code"] = decline_code
    err.update({k: v for k, v in extra.items() if v is not None})
    return {"error": err}


def for_exception(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """Status and body for a domain error (order matters: subclasses first)."""
    if isinstance(exc, CardError):
        return 402, error_body("card_error", exc.message, code=exc.code,
                               decline_code=exc.decline_code, payment_intent=exc.payment_intent)
    if isinstance(exc, IdempotencyInFlight):
        return 409, error_body("idempotency_error", exc.message, code=exc.code, param=exc.param)
    if isinstance(exc, IdempotencyError):
        return 400, error_body("idempotency_error", exc.message, code=exc.code, param=exc.param)
    if isinstance(exc, NotFound | RouteNotFound):
        return 404, error_body("invalid_request_error", exc.message, code="resource_missing",
                               param=exc.param)
    if isinstance(exc, AuthenticationError):
        return 401, error_body("invalid_request_error", exc.message, code=exc.code)
    if isinstance(exc, PermissionDenied):
        return 403, error_body("invalid_request_error", exc.message, code=exc.code)
    if isinstance(exc, ConcurrentModification):
        return 409, error_body("invalid_request_error", exc.message, code=exc.code)
    if isinstance(exc, IllegalTransition | AmountError | InvalidRequest):
        return 400, error_body("invalid_request_error", exc.message, code=exc.code,
                               param=exc.param)
    if isinstance(exc, ValidationError):
        return 400, validation_body(exc)
    if isinstance(exc, KassaError):
        return 400, error_body("invalid_request_error", exc.message, code=exc.code,
                               param=exc.param)
    return 500, error_body("api_error", "An internal error occurred; the request may be retried "
                           "with the same Idempotency-Key.")


def validation_body(exc: ValidationError) -> dict[str, Any]:
    first = exc.errors()[0]
    loc = [str(p) for p in first["loc"]]
    param = loc[0] + "".join(f"[{p}]" for p in loc[1:]) if loc else None
    if first["type"] == "extra_forbidden":
        return error_body("invalid_request_error", f"Received unknown parameter: {param}",
                          code="parameter_unknown", param=param)
    if first["type"] == "missing":
        return error_body("invalid_request_error", f"Missing required param: {param}.",
                          code="parameter_missing", param=param)
    msg = first["msg"].removeprefix("Value error, ")
    return error_body("invalid_request_error", f"Invalid {param}: {msg}",
                      code="parameter_invalid", param=param)


def render(result: object) -> tuple[int, bytes]:
    """(status, body bytes) for a result object or an error — also what idempotency stores."""
    if isinstance(result, BaseException):
        status, body = for_exception(result)
        return status, orjson.dumps(body)
    return 200, orjson.dumps(result)
