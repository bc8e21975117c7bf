"""Reading the simulator's JSON requests: each helper returns a checked value or raises
InvalidRequest naming the offending parameter (answered 400, nothing stored)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from kassa.domain.money import EXPONENTS, MAX_AMOUNT
from kassa.psp.simulator.books import InvalidRequest

MAX_KEY_LENGTH = 255


async def json_body(request: Request) -> dict[str, Any]:
    """The body as a JSON object; an empty body is ``{}``."""
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest("Body must be JSON.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("Body must be a JSON object.")
    return body


def idempotency_key(body: dict[str, Any]) -> str:
    key = body.get("idempotency_key")
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidRequest(f"idempotency_key must be a string of 1-{MAX_KEY_LENGTH} chars",
                             "idempotency_key")
    return key


def integer(body: dict[str, Any], name: str, *, minimum: int, maximum: int,
            param: str | None = None) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not (
        minimum <= value <= maximum
    ):
        raise InvalidRequest(f"{param or name} must be an integer in {minimum}..{maximum}",
                             param or name)
    return value


def optional_integer(body: dict[str, Any], name: str, *, minimum: int, maximum: int
                     ) -> int | None:
    if body.get(name) is None:
        return None
    return integer(body, name, minimum=minimum, maximum=maximum)


def optional_string(body: dict[str, Any], name: str, *, param: str | None = None
                    ) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"{param or name} must be a string", param or name)
    return value


def boolean(body: dict[str, Any], name: str, *, default: bool | None = None) -> bool:
    """``body[name]`` as a boolean; without ``default`` the field is required."""
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise InvalidRequest(f"{name} must be a boolean", name)
    return value


def currency(body: dict[str, Any]) -> str:
    value = body.get("currency")
    if not isinstance(value, str) or value not in EXPONENTS:
        raise InvalidRequest("currency must be a lower-case ISO 4217 code", "currency")
    return value


def amount_change(body: dict[str, Any]) -> tuple[str, int | None, str | None]:
    """A capture's or refund's ``(idempotency_key, amount?, currency?)``."""
    key = idempotency_key(body)
    amount = optional_integer(body, "amount", minimum=1, maximum=MAX_AMOUNT)
    return key, amount, currency(body) if body.get("currency") is not None else None
