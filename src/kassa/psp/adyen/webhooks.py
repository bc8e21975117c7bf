"""Adyen standard notifications: every item of a batch verified (HMAC-SHA256 under any of
the configured hex keys, constant-time), then normalised to kassa's PSPEvents — Adyen's
event codes are mapped here only (table in README.md).

A batch is accepted whole or refused whole: one item with a missing or wrong
``hmacSignature`` refuses the delivery (400, nothing stored), so Adyen retries it and a
forged item can never ride along with genuine ones. (Adyen's own Python helper checks only
the first item.) Adyen signs no timestamp and retries for up to 30 days, so a replay is
not refused by age: it is a duplicate, since each event's id is
``pspReference:eventCode:success:eventDate`` (unix seconds), which the inbox keeps unique,
and kassa's answer to Adyen is ``[accepted]`` (routes: api/routers/psp_webhooks.py). The
date is part of it because Adyen sends the same eventCode about the same pspReference
again for a new occurrence (a second CHARGEBACK): that one is processed, an exact repeat
is not.

``sequence`` orders events about one PSP object: the event's date in seconds times 16
plus its stage in that object's life (a CAPTURE_FAILED after its CAPTURE, a
CHARGEBACK_REVERSED after its CHARGEBACK).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from kassa.domain.disputes import DisputeStatus
from kassa.domain.money import UnknownCurrency
from kassa.psp.adyen import mapping as m
from kassa.psp.base import Outcome, PSPDispute, PSPEvent, PSPEventType, WebhookRejected

log = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES = 512 * 1024
MAX_ITEMS = 100
MAX_EPOCH = 253402300800  # 10000-01-01: eventDate must lie after 1970 and before it
CAPTURE_KEY = "kassa_capture"  # kassa's metadata key: "automatic" or "manual" (informative)

# eventCode → (kassa's event for success=true, for success=false, stage)
MODIFICATIONS: dict[str, tuple[PSPEventType, PSPEventType, int]] = {
    "CAPTURE": (PSPEventType.CAPTURE_SUCCEEDED, PSPEventType.CAPTURE_FAILED, 1),
    "CAPTURE_FAILED": (PSPEventType.CAPTURE_FAILED, PSPEventType.CAPTURE_FAILED, 2),
    "CANCELLATION": (PSPEventType.VOID_SUCCEEDED, PSPEventType.VOID_FAILED, 1),
    "REFUND": (PSPEventType.REFUND_SUCCEEDED, PSPEventType.REFUND_FAILED, 1),
    "REFUND_FAILED": (PSPEventType.REFUND_FAILED, PSPEventType.REFUND_FAILED, 2),
}
# eventCode → (kassa's event, the dispute's status, stage)
DISPUTES: dict[str, tuple[PSPEventType, DisputeStatus, int]] = {
    "NOTIFICATION_OF_CHARGEBACK": (PSPEventType.DISPUTE_CREATED,
                                   DisputeStatus.WARNING_NEEDS_RESPONSE, 1),
    "CHARGEBACK": (PSPEventType.DISPUTE_UPDATED, DisputeStatus.NEEDS_RESPONSE, 4),
    "CHARGEBACK_REVERSED": (PSPEventType.DISPUTE_CLOSED, DisputeStatus.WON, 6),
    "SECOND_CHARGEBACK": (PSPEventType.DISPUTE_CLOSED, DisputeStatus.LOST, 7),
}
# card-network reason codes (Visa's, Mastercard's) as kassa's (Stripe's) dispute reasons
REASONS: dict[str, str] = {"10": "fraudulent", "4837": "fraudulent", "4863": "fraudulent",
                           "13.1": "product_not_received", "4855": "product_not_received",
                           "12.6.1": "duplicate", "4834": "duplicate",
                           "13.6": "credit_not_processed", "4860": "credit_not_processed",
                           "13.3": "product_unacceptable", "4853": "product_unacceptable"}


def signing_string(item: dict[str, Any]) -> bytes:
    """pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:
    eventCode:success — a missing field is empty."""
    amount = item.get("amount") if isinstance(item.get("amount"), dict) else {}
    assert isinstance(amount, dict)
    parts = (item.get("pspReference"), item.get("originalReference"),
             item.get("merchantAccountCode"), item.get("merchantReference"),
             amount.get("value"), amount.get("currency"), item.get("eventCode"),
             item.get("success"))
    return ":".join("" if p is None else str(p) for p in parts).encode()


def signature(item: dict[str, Any], key: bytes) -> str:
    return base64.b64encode(hmac.new(key, signing_string(item), hashlib.sha256).digest()
                            ).decode()


def verify_item(item: dict[str, Any], keys: Sequence[bytes]) -> None:
    extra = item.get("additionalData")
    given = extra.get("hmacSignature") if isinstance(extra, dict) else None
    if not isinstance(given, str) or not given:
        raise WebhookRejected(f"notification item {item.get('pspReference')!r} is unsigned")
    if not any(hmac.compare_digest(given.encode(), signature(item, key).encode())
               for key in keys):
        raise WebhookRejected(f"notification item {item.get('pspReference')!r}: "
                              "hmacSignature does not match")


def items_of(body: bytes, *, live: bool) -> list[dict[str, Any]]:
    if len(body) > MAX_WEBHOOK_BYTES:
        raise WebhookRejected("webhook body too large")
    try:
        payload = orjson.loads(body)
        wrapped = payload["notificationItems"]
        items = [w["NotificationRequestItem"] for w in wrapped]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise WebhookRejected(f"not an Adyen notification ({type(exc).__name__})") from None
    if not items or len(items) > MAX_ITEMS or not all(isinstance(i, dict) for i in items):
        raise WebhookRejected("an Adyen notification carries 1-100 items")
    if str(payload.get("live")).lower() != ("true" if live else "false"):
        raise WebhookRejected(f"a {'test' if live else 'live'} notification at a "
                              f"{'live' if live else 'test'} account")
    return items


def parse(psp: str, body: bytes, *, keys: Sequence[bytes], live: bool,
          merchant_account: str | None) -> list[PSPEvent]:
    """Verify every item, then normalise each (items about other accounts or events kassa
    does not act on are verified and dropped)."""
    if not keys:
        raise WebhookRejected("no Adyen HMAC key is configured")
    items = items_of(body, live=live)
    for item in items:
        verify_item(item, keys)
    events: list[PSPEvent] = []
    for item in items:
        if merchant_account is not None and item.get("merchantAccountCode") != merchant_account:
            log.warning("adyen notification for account %r dropped",
                        item.get("merchantAccountCode"))
            continue
        try:
            event = _event(psp, item)
        except (KeyError, TypeError, ValueError, UnknownCurrency, m.MalformedAnswer) as exc:
            raise WebhookRejected(f"malformed notification item ({type(exc).__name__})"
                                  ) from None
        if event is not None:
            events.append(event)
    return events


def _event(psp: str, item: dict[str, Any]) -> PSPEvent | None:
    code = _text(item["eventCode"])
    success = item["success"]
    if success not in ("true", "false"):
        raise ValueError("success")
    created = _epoch(item["eventDate"])
    if not 0 < created < MAX_EPOCH:  # the inbox's sequence is positive (bigint)
        raise ValueError("eventDate out of range")
    reference = _text(item["pspReference"])
    extra = item.get("additionalData") or {}
    if not isinstance(extra, dict):
        raise ValueError("additionalData")
    # Adyen's own identity of an event: the same eventCode about the same pspReference
    # may legitimately come again with a new eventDate (a second CHARGEBACK); only an
    # exact repeat (same date too) is a replay
    event_id = f"{reference}:{code}:{success}:{created}"
    if len(event_id) > 255:  # the inbox keeps ids of 1-255 characters
        raise ValueError("pspReference and eventCode too long")
    common: dict[str, Any] = {"psp": psp, "event_id": event_id,
                              "created": created, "object_ref": reference}
    amount = m.money(item["amount"]) if item.get("amount") is not None else None
    if code == "AUTHORISATION":
        return _authorisation(common, item, extra, success == "true", amount)
    if code in MODIFICATIONS:
        ok, failed, stage = MODIFICATIONS[code]
        kind = ok if success == "true" else failed
        settled = kind in (PSPEventType.CAPTURE_SUCCEEDED, PSPEventType.VOID_SUCCEEDED,
                           PSPEventType.REFUND_SUCCEEDED)
        reason = item.get("reason")
        return PSPEvent(**common, type=kind, sequence=created * 16 + stage,
                        psp_reference=_text(item["originalReference"]),
                        reference=_optional(item.get("merchantReference")),
                        operation_reference=reference, amount=amount,
                        failure_code=None if settled else _failure(code),
                        message=None if settled or not reason else m.redact(str(reason)))
    if code in DISPUTES:
        kind, status, stage = DISPUTES[code]
        if amount is None:
            raise ValueError("a dispute notification without its amount")
        due = extra.get("defensePeriodEndsAt")
        return PSPEvent(
            **common, type=kind, sequence=created * 16 + stage,
            psp_reference=_text(item["originalReference"]),
            reference=_optional(item.get("merchantReference")), amount=amount,
            dispute=PSPDispute(psp_dispute_id=reference, status=status, amount=amount,
                               reason=_reason(extra.get("chargebackReasonCode")),
                               evidence_due_by=_epoch(due) if due else None,
                               created=created))
    return None  # verified; nothing kassa acts on (REPORT_AVAILABLE, …)


def _authorisation(common: dict[str, Any], item: dict[str, Any], extra: dict[str, Any],
                   success: bool, amount: Any) -> PSPEvent:
    """How an authorisation ended (kassa records it for an attempt that waited on 3-D
    Secure; for the others it already knows). A success is AUTHORIZED: whether it was
    captured at once is what kassa asked for (the attempt's own ``capture``, applied by
    webhooks/inbound.py), never ``additionalData`` — those fields are not signed, and an
    account may not send them at all."""
    outcome: Outcome
    decline = None
    if success:
        outcome = Outcome.AUTHORIZED
    else:
        outcome = Outcome.DECLINED
        decline = m.decline_code(extra.get("refusalReasonCode"), item.get("reason"),
                                 extra.get("refusalReasonRaw"))
    reason = item.get("reason")
    return PSPEvent(**common, type=PSPEventType.AUTHORIZATION_UPDATED,
                    sequence=common["created"] * 16 + 1,
                    psp_reference=common["object_ref"],
                    reference=_optional(item.get("merchantReference")),
                    operation_reference=common["object_ref"], amount=amount, outcome=outcome,
                    decline_code=decline,
                    message=m.redact(str(reason)) if reason and not success else None)


def _failure(code: str) -> str:
    return {"CAPTURE": "capture_failed", "CAPTURE_FAILED": "capture_failed",
            "CANCELLATION": "void_failed"}.get(code, "unknown")


def _reason(code: Any) -> str:
    if not isinstance(code, str):
        return "general"
    return REASONS.get(code) or REASONS.get(code.split(".")[0], "general")


def _epoch(value: Any) -> int:
    if not isinstance(value, str):
        raise ValueError("date")
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError("date without a zone")
    return int(when.timestamp())


def _text(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 255:
        raise ValueError("expected a short non-empty string")
    return value


def _optional(value: object) -> str | None:
    return None if value is None or value == "" else _text(value)
