"""The PSPAdapter for kassa's built-in simulator; its status words become Outcomes here only.

``psp_reference`` of an authorize result is the simulator's authorization id (``sim_…``),
which capture/void/refund take back; a capture/void/refund result carries that
operation's own id (``simop_…``), like Stripe's refund ids or Adyen's modification
references.

Error mapping: a connection that could not be opened (refused, DNS; psp/transport_errors.py
decides, since httpx-aiohttp calls some of those a timeout) → PSPUnavailable (the request
never left); other timeouts → PSPTimeout; other transport errors
(reset, protocol), 5xx, a 409 ``idempotency_error`` (the key is the PSP's already) and an
answer kassa cannot read → PSPOutcomeUnknown; 429 → PSPUnavailable; other 4xx →
PSPRefused; ``lookup`` 404 → UnknownOperation. Declines and refused operations are
results, never exceptions.

Webhooks: ``parse_webhook`` checks the ``Sim-Signature`` HMAC over the raw body with the
shared secret (any of several while rotating) and a timestamp tolerance, then maps the
simulator's event to a :class:`PSPEvent` — also only here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from kassa.domain.disputes import DisputeStatus
from kassa.domain.money import Money, UnknownCurrency
from kassa.psp.base import (
    AttemptRef,
    AuthorizeRequest,
    Outcome,
    PSPDispute,
    PSPEvent,
    PSPEventType,
    PSPOutcomeUnknown,
    PSPRefused,
    PSPResult,
    PSPTimeout,
    PSPUnavailable,
    UnknownOperation,
    WebhookRejected,
)
from kassa.psp.simulator import signature
from kassa.psp.transport_errors import never_sent

# The simulator's status words, mapped to kassa's outcomes in this one place.
AUTHORIZATION_OUTCOMES: dict[str, Outcome] = {
    "authorized": Outcome.AUTHORIZED,
    "captured": Outcome.CAPTURED,
    "requires_action": Outcome.REQUIRES_ACTION,
    "declined": Outcome.DECLINED,
    "voided": Outcome.VOIDED,
    "expired": Outcome.VOIDED,  # lapsed uncaptured (decline_code authorization_expired)
}
OPERATION_OUTCOMES: dict[str, Outcome] = {
    "captured": Outcome.CAPTURED,
    "voided": Outcome.VOIDED,
    "refunded": Outcome.REFUNDED,
    "failed": Outcome.FAILED,
}
PENDING_OUTCOMES: dict[str, Outcome] = {  # by operation object
    "capture": Outcome.CAPTURE_PENDING,
    "refund": Outcome.REFUND_PENDING,
}
EVENT_TYPES: dict[str, PSPEventType] = {
    "authorization.updated": PSPEventType.AUTHORIZATION_UPDATED,
    "capture.succeeded": PSPEventType.CAPTURE_SUCCEEDED,
    "capture.failed": PSPEventType.CAPTURE_FAILED,
    "refund.succeeded": PSPEventType.REFUND_SUCCEEDED,
    "refund.failed": PSPEventType.REFUND_FAILED,
    "dispute.created": PSPEventType.DISPUTE_CREATED,
    "dispute.updated": PSPEventType.DISPUTE_UPDATED,
    "dispute.closed": PSPEventType.DISPUTE_CLOSED,
}
DISPUTE_STATUSES: dict[str, DisputeStatus] = {s.value: s for s in DisputeStatus}
MAX_WEBHOOK_BYTES = 256 * 1024

_JSON_HEADERS = {"content-type": "application/json"}
_PAN_LIKE = re.compile(r"\d{12,19}")


class SimulatorAdapter:
    """Talks to a running simulator (``kassa.psp.simulator.app``) over HTTP."""

    def __init__(self, client: httpx.AsyncClient, base_url: str, *, name: str = "simulator",
                 timeout: float = 10.0, webhook_secrets: Sequence[str] = (),
                 webhook_tolerance_s: int = signature.DEFAULT_TOLERANCE_S) -> None:
        self.name = name
        self._client = client
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._webhook_secrets = tuple(s for s in webhook_secrets if s)
        self._webhook_tolerance_s = webhook_tolerance_s

    async def authorize(self, request: AuthorizeRequest) -> PSPResult:
        body: dict[str, Any] = {
            "idempotency_key": request.idempotency_key,
            "amount": request.amount.minor,
            "currency": request.amount.currency,
            "capture": request.capture,
            "merchant_id": request.merchant_id,
        }
        if request.psp_token is not None:  # the simulator's own token: no card data at all
            body["token"] = request.psp_token
        else:
            card: dict[str, Any] = {
                "number": request.card.number,
                "exp_month": request.card.exp_month,
                "exp_year": request.card.exp_year,
            }
            if request.card.cvc is not None:
                card["cvc"] = request.card.cvc
            body["card"] = card
        if request.description is not None:
            body["description"] = request.description
        if request.return_url is not None:
            body["return_url"] = request.return_url
        if request.off_session:
            body["off_session"] = True
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

    async def lookup(self, attempt: AttemptRef) -> PSPResult:
        """The simulator keeps every operation by its idempotency key and answers by it."""
        key = attempt.idempotency_key
        payload = await self._send("GET", f"/v1/operations/{_seg(key)}", None, "lookup", key)
        return _to_result(payload)

    async def submit_dispute_evidence(self, *, psp_dispute_id: str,
                                      evidence: Mapping[str, str]) -> None:
        await self._send("POST", f"/v1/disputes/{_seg(psp_dispute_id)}/evidence",
                         {"evidence": dict(evidence), "submit": True}, "dispute evidence",
                         psp_dispute_id)

    async def accept_dispute(self, *, psp_dispute_id: str) -> None:
        await self._send("POST", f"/v1/disputes/{_seg(psp_dispute_id)}/accept", {},
                         "dispute acceptance", psp_dispute_id)

    async def parse_webhook(self, *, headers: Mapping[str, str], body: bytes,
                            now: int) -> Sequence[PSPEvent]:
        if len(body) > MAX_WEBHOOK_BYTES:
            raise WebhookRejected("webhook body too large")
        try:
            signature.verify(headers.get(signature.HEADER.lower()) or
                             headers.get(signature.HEADER), body,
                             secrets=self._webhook_secrets, now=now,
                             tolerance_s=self._webhook_tolerance_s)
        except signature.SignatureError as exc:
            raise WebhookRejected(str(exc)) from None
        try:
            payload = orjson.loads(body)
            event = self._event(payload)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError,
                UnknownCurrency) as exc:
            raise WebhookRejected(f"malformed simulator event ({type(exc).__name__})") from None
        return [] if event is None else [event]

    def _event(self, payload: dict[str, Any]) -> PSPEvent | None:
        kind = EVENT_TYPES.get(payload["type"])
        if kind is None:
            return None  # verified, but nothing kassa acts on
        obj = payload["data"]["object"]
        sequence = payload["sequence"]
        if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 1:
            raise ValueError("sequence")
        authorization = obj["id"] if obj.get("object") == "authorization" \
            else obj["authorization"]
        common: dict[str, Any] = {
            "psp": self.name, "event_id": _text(payload["id"]), "type": kind,
            "object_ref": _text(obj["id"]), "sequence": sequence,
            "created": int(payload["created"]), "psp_reference": _text(authorization),
            "amount": Money(int(obj["amount"]), _text(obj["currency"])),
        }
        if kind is PSPEventType.AUTHORIZATION_UPDATED:
            outcome = AUTHORIZATION_OUTCOMES[obj["status"]]
            if outcome is Outcome.CAPTURED:
                common["amount"] = Money(int(obj["amount_captured"]), _text(obj["currency"]))
            code = obj.get("decline_code")
            message = obj.get("message")
            return PSPEvent(**common, reference=_text(obj["idempotency_key"]),
                            operation_reference=_text(obj["id"]), outcome=outcome,
                            decline_code=None if code is None else _text(code),
                            message=_redact(str(message)) if message else None)
        if obj.get("object") == "dispute":
            status = DISPUTE_STATUSES[obj["status"]]
            due = obj.get("evidence_due_by")
            return PSPEvent(
                **common, reference=_text(obj["authorization_idempotency_key"]),
                dispute=PSPDispute(
                    psp_dispute_id=_text(obj["id"]), status=status, amount=common["amount"],
                    reason=_text(obj["reason"]), evidence_due_by=None if due is None
                    else int(due), created=int(obj["created"])))
        message = obj.get("message")
        return PSPEvent(**common, reference=_text(obj["idempotency_key"]),
                        operation_reference=_text(obj["id"]),
                        failure_code=obj.get("failure_code"),
                        message=_redact(str(message)) if message else None)

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
        except httpx.TransportError as exc:
            if never_sent(exc):  # no connection was made, so the request was never sent
                raise PSPUnavailable(f"{where}: {type(exc).__name__}") from exc
            if isinstance(exc, httpx.TimeoutException):
                raise PSPTimeout(f"{where}: no answer within {self._timeout}s "
                                 f"({type(exc).__name__})") from exc
            raise PSPOutcomeUnknown(f"{where}: {type(exc).__name__}") from exc
        status = response.status_code
        if status >= 500:
            raise PSPOutcomeUnknown(f"{where}: HTTP {status} {_error_message(response)}")
        if status == 404 and operation == "lookup":
            raise UnknownOperation(f"{where}: the simulator never received this operation")
        if status == 429:  # rate limited: refused before acting, a later repeat may pass
            raise PSPUnavailable(f"{where}: HTTP 429 {_error_message(response)}")
        if status == 409 and _error_type(response) == "idempotency_error":
            # the PSP holds this key for another request: it may have acted on it, so this
            # is not a refusal; lookup tells what it did
            raise PSPOutcomeUnknown(f"{where}: HTTP 409 {_error_message(response)}")
        if status >= 400:
            raise PSPRefused(f"{where}: HTTP {status} {_error_message(response)}")
        try:
            payload = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            # The answer is unreadable, so the outcome is unknown: lookup asks later.
            raise PSPOutcomeUnknown(f"{where}: HTTP {status} with a body that is not JSON"
                                    ) from exc
        if not isinstance(payload, dict):
            raise PSPOutcomeUnknown(f"{where}: HTTP {status} with an unexpected body")
        return payload


def _to_result(payload: dict[str, Any]) -> PSPResult:
    try:
        return _parse_result(payload)
    except (KeyError, TypeError, ValueError, UnknownCurrency) as exc:
        # kassa cannot tell what the PSP did: recovery asks again
        raise PSPOutcomeUnknown(f"simulator answered a malformed result "
                                f"({type(exc).__name__})") from exc


def _parse_result(payload: dict[str, Any]) -> PSPResult:
    status = str(payload.get("status"))
    is_authorization = payload.get("object") == "authorization"
    outcomes = AUTHORIZATION_OUTCOMES if is_authorization else OPERATION_OUTCOMES
    outcome = outcomes.get(status)
    if status == "pending" and not is_authorization:
        outcome = PENDING_OUTCOMES.get(str(payload.get("object")))
    if outcome is None:
        raise ValueError(f"simulator answered an unknown status {status!r}")
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


def _text(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 255:
        raise ValueError("expected a short non-empty string")
    return value


def _error_type(response: httpx.Response) -> str | None:
    try:
        kind = orjson.loads(response.content)["error"]["type"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    return kind if isinstance(kind, str) else None


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
