"""The PSPAdapter for kassa's built-in simulator; its status words become Outcomes here only.

``psp_reference`` of an authorize result is the simulator's authorization id (``sim_…``),
which capture/void/refund take back; a capture/void/refund result carries that
operation's own id (``simop_…``), like Stripe's refund ids or Adyen's modification
references.

Error mapping: ``httpx.TimeoutException`` → PSPTimeout; other transport errors (refused,
reset, protocol) and 5xx → PSPRetryable; other 4xx → PSPRejected; ``get_status`` 404 →
UnknownOperation. Declines and refused operations are results, never exceptions.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from kassa.domain.money import Money
from kassa.psp.base import (
    AuthorizeRequest,
    Outcome,
    PSPError,
    PSPRejected,
    PSPResult,
    PSPRetryable,
    PSPTimeout,
    UnknownOperation,
)

# The simulator's status words, mapped to kassa's outcomes in this one place.
AUTHORIZATION_OUTCOMES: dict[str, Outcome] = {
    "authorized": Outcome.AUTHORIZED,
    "captured": Outcome.CAPTURED,
    "requires_action": Outcome.REQUIRES_ACTION,
    "declined": Outcome.DECLINED,
    "voided": Outcome.VOIDED,
}
OPERATION_OUTCOMES: dict[str, Outcome] = {
    "captured": Outcome.CAPTURED,
    "voided": Outcome.VOIDED,
    "refunded": Outcome.REFUNDED,
    "failed": Outcome.FAILED,
}

_JSON_HEADERS = {"content-type": "application/json"}
_PAN_LIKE = re.compile(r"\d{12,19}")


class SimulatorAdapter:
    """Talks to a running simulator (``kassa.psp.simulator.app``) over HTTP."""

    def __init__(self, client: httpx.AsyncClient, base_url: str, *, name: str = "simulator",
                 timeout: float = 10.0) -> None:
        self.name = name
        self._client = client
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout

    async def authorize(self, request: AuthorizeRequest) -> PSPResult:
        card: dict[str, Any] = {
            "number": request.card.number,
            "exp_month": request.card.exp_month,
            "exp_year": request.card.exp_year,
        }
        if request.card.cvc is not None:
            card["cvc"] = request.card.cvc
        body: dict[str, Any] = {
            "idempotency_key": request.idempotency_key,
            "amount": request.amount.minor,
            "currency": request.amount.currency,
            "card": card,
            "capture": request.capture,
            "merchant_id": request.merchant_id,
        }
        if request.description is not None:
            body["description"] = request.description
        if request.return_url is not None:
            body["return_url"] = request.return_url
        payload = await self._send("POST", "/v1/authorizations", body, "authorize",
                                   request.idempotency_key)
        return _to_result(payload)

    async def capture(self, *, idempotency_key: str, psp_reference: str,
                      amount: Money) -> PSPResult:
        body = {"idempotency_key": idempotency_key, "amount": amount.minor,
                "currency": amount.currency}
        payload = await self._send("POST", f"/v1/authorizations/{_seg(psp_reference)}/capture",
                                   body, "capture", idempotency_key)
        return _to_result(payload)

    async def void(self, *, idempotency_key: str, psp_reference: str) -> PSPResult:
        payload = await self._send("POST", f"/v1/authorizations/{_seg(psp_reference)}/void",
                                   {"idempotency_key": idempotency_key}, "void",
                                   idempotency_key)
        return _to_result(payload)

    async def refund(self, *, idempotency_key: str, psp_reference: str,
                     amount: Money) -> PSPResult:
        body = {"idempotency_key": idempotency_key, "amount": amount.minor,
                "currency": amount.currency}
        payload = await self._send("POST", f"/v1/authorizations/{_seg(psp_reference)}/refunds",
                                   body, "refund", idempotency_key)
        return _to_result(payload)

    async def get_status(self, *, idempotency_key: str) -> PSPResult:
        payload = await self._send("GET", f"/v1/operations/{_seg(idempotency_key)}", None,
                                   "get_status", idempotency_key)
        return _to_result(payload)

    async def _send(self, method: str, path: str, body: dict[str, Any] | None,
                    operation: str, idempotency_key: str) -> dict[str, Any]:
        where = f"{self.name} {operation} (key {idempotency_key!r})"
        try:
            response = await self._client.request(
                method,
                self._base_url + path,
                content=None if body is None else orjson.dumps(body),
                headers=None if body is None else _JSON_HEADERS,
                timeout=self._timeout,
            )
        except httpx.TimeoutException as exc:
            raise PSPTimeout(f"{where}: no answer within {self._timeout}s "
                             f"({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise PSPRetryable(f"{where}: {type(exc).__name__}") from exc
        status = response.status_code
        if status >= 500:
            raise PSPRetryable(f"{where}: HTTP {status} {_error_message(response)}")
        if status == 404 and operation == "get_status":
            raise UnknownOperation(f"{where}: the simulator never received this operation")
        if status >= 400:
            raise PSPRejected(f"{where}: HTTP {status} {_error_message(response)}")
        try:
            payload = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            # The answer is unreadable, so the outcome is unknown: ask get_status later.
            raise PSPRetryable(f"{where}: HTTP {status} with a body that is not JSON") from exc
        if not isinstance(payload, dict):
            raise PSPRetryable(f"{where}: HTTP {status} with an unexpected body")
        return payload


def _to_result(payload: dict[str, Any]) -> PSPResult:
    try:
        return _parse_result(payload)
    except (KeyError, TypeError, ValueError) as exc:
        raise PSPError(f"simulator answered a malformed result ({type(exc).__name__})") from exc


def _parse_result(payload: dict[str, Any]) -> PSPResult:
    status = str(payload.get("status"))
    is_authorization = payload.get("object") == "authorization"
    outcomes = AUTHORIZATION_OUTCOMES if is_authorization else OPERATION_OUTCOMES
    outcome = outcomes.get(status)
    if outcome is None:
        raise PSPError(f"simulator answered an unknown status {status!r}")
    currency = payload["currency"]
    if is_authorization:
        minor = payload["amount_captured"] if outcome is Outcome.CAPTURED else payload["amount"]
        decline_code = payload.get("decline_code")
    else:
        minor = payload["amount"]
        decline_code = payload.get("failure_code")
    message = payload.get("message")
    return PSPResult(
        outcome=outcome,
        psp_reference=payload["id"],
        amount=Money(minor, currency),
        decline_code=decline_code,
        message=_redact(message) if message else None,
        action_url=payload.get("action_url"),
        raw_status=status,
    )


def _seg(value: str) -> str:
    return quote(value, safe="")


def _error_message(response: httpx.Response) -> str:
    try:
        error = orjson.loads(response.content)["error"]
        text = f"{error['type']}: {error['message']}"
    except (orjson.JSONDecodeError, KeyError, TypeError):
        text = response.text[:200]
    return _redact(text)


def _redact(text: str) -> str:
    """Mask anything that looks like a card number, in case a PSP echoes one back."""
    return _PAN_LIKE.sub(lambda m: f"…{m.group()[-4:]}", text)
