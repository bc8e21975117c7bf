"""Adyen's result codes, refusal reasons and errors as kassa's outcomes, decline codes and
PSP error classes — here only (tables in README.md beside this file).

resultCode (authorisation): ``Authorised`` CAPTURED when kassa asked for capture at once,
else AUTHORIZED; ``Refused`` DECLINED (the refusal reason's decline code), ``Error`` and
``Cancelled`` DECLINED; ``RedirectShopper``/``IdentifyShopper``/``ChallengeShopper``
REQUIRES_ACTION; ``Pending``/``Received`` and anything else not final PSPOutcomeUnknown
(the AUTHORISATION notification or recovery settles it). Modifications answer
``received``: CAPTURE_PENDING, VOID_PENDING, REFUND_PENDING.

Errors: a connection never opened (refused, DNS, connect timeout) PSPUnavailable; other
timeouts PSPTimeout; any other transport failure, 5xx, an unreadable answer and 422
``704`` (the key is held by a request Adyen may have processed) PSPOutcomeUnknown;
401/403 (the API key or account is refused before anything is done) and 429
PSPUnavailable; other 4xx PSPRefused.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from kassa.domain.money import EXPONENTS, Money
from kassa.psp.base import (
    Outcome,
    PSPError,
    PSPOutcomeUnknown,
    PSPRefused,
    PSPResult,
    PSPTimeout,
    PSPUnavailable,
)
from kassa.psp.transport_errors import never_sent

ACTION_CODES = frozenset({"RedirectShopper", "IdentifyShopper", "ChallengeShopper"})
IDEMPOTENCY_IN_USE = "704"  # "request already processed or in progress"

# refusalReasonCode → kassa's (Stripe's) decline code
REFUSAL_CODES: dict[str, str] = {
    "2": "generic_decline",  # Refused
    "3": "call_issuer",  # Referral
    "4": "processing_error",  # Acquirer Error
    "5": "pickup_card",  # Blocked Card (lost/stolen told by the raw reason, below)
    "6": "expired_card",
    "7": "invalid_amount",
    "8": "incorrect_number",
    "9": "issuer_not_available",
    "10": "card_not_supported",
    "11": "authentication_failed",  # 3D Not Authenticated
    "12": "insufficient_funds",  # Not enough balance
    "14": "fraudulent",  # Acquirer Fraud
    "15": "generic_decline",  # Cancelled
    "16": "generic_decline",  # Shopper Cancelled
    "17": "incorrect_pin",
    "18": "pin_try_exceeded",
    "20": "fraudulent",  # FRAUD
    "21": "processing_error",  # Not Submitted
    "22": "fraudulent",  # FRAUD-CANCELLED
    "23": "transaction_not_allowed",
    "24": "incorrect_cvc",  # CVC Declined
    "25": "restricted_card",
    "26": "revocation_of_authorization",
    "27": "do_not_honor",  # Declined Non Generic
    "28": "withdrawal_count_limit_exceeded",  # Withdrawal amount exceeded
    "29": "card_velocity_exceeded",  # Withdrawal count exceeded
    "31": "fraudulent",  # Issuer Suspected Fraud
    "32": "incorrect_zip",  # AVS Declined
    "33": "online_or_offline_pin_required",
    "34": "invalid_account",
    "35": "invalid_account",
    "36": "online_or_offline_pin_required",
    "38": "authentication_required",
    "39": "authentication_required",
    "42": "authentication_required",  # 3DS Authentication Error
    "46": "transaction_not_allowed",  # blocked by Adyen to spare retry fees
}
# refusalReason (text) when no code comes with it
REFUSAL_REASONS: dict[str, str] = {
    "refused": "2", "referral": "3", "acquirer error": "4", "blocked card": "5",
    "expired card": "6", "invalid amount": "7", "invalid card number": "8",
    "issuer unavailable": "9", "not supported": "10", "3d not authenticated": "11",
    "not enough balance": "12", "cvc declined": "24", "restricted card": "25",
}
# Blocked Card: the issuer's ISO 8583 answer in refusalReasonRaw tells why
RAW_BLOCKED: dict[str, str] = {"41": "lost_card", "43": "stolen_card"}
_PAN_LIKE = re.compile(r"\d{12,19}")


class MalformedAnswer(PSPOutcomeUnknown):
    """Adyen's answer cannot be read as the object it should be."""


def money(amount: Any) -> Money:
    """Adyen's ``{value, currency}`` (upper-case ISO 4217, minor units)."""
    if not isinstance(amount, dict):
        raise MalformedAnswer("amount missing")
    value, currency = amount.get("value"), amount.get("currency")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 \
            or not isinstance(currency, str) or currency.lower() not in EXPONENTS:
        raise MalformedAnswer("amount unreadable")
    return Money(value, currency.lower())


def amount_view(amount: Money) -> dict[str, Any]:
    return {"value": amount.minor, "currency": amount.currency.upper()}


def decline_code(reason_code: Any, reason: Any, raw: Any) -> str:
    code = reason_code if isinstance(reason_code, str) and reason_code else \
        REFUSAL_REASONS.get(str(reason or "").strip().lower(), "")
    if code == "5" and isinstance(raw, str):
        iso = raw.split(":", 1)[0].strip()
        if iso in RAW_BLOCKED:
            return RAW_BLOCKED[iso]
    return REFUSAL_CODES.get(code, "generic_decline")


def payment_result(answer: Any, *, capture: bool) -> PSPResult:
    """A PaymentResponse (from /payments or /payments/details) as kassa's result."""
    if not isinstance(answer, dict):
        raise MalformedAnswer("adyen answered something that is not an object")
    code = answer.get("resultCode")
    psp = answer.get("pspReference")
    if not isinstance(code, str) or (not isinstance(psp, str) and code != "Error"):
        raise MalformedAnswer(f"adyen answered resultCode {code!r} without a pspReference")
    reference = psp if isinstance(psp, str) else ""
    amount = money(answer["amount"]) if answer.get("amount") is not None else None
    if code == "Authorised":
        return PSPResult(Outcome.CAPTURED if capture else Outcome.AUTHORIZED, reference,
                         amount=amount, raw_status=code)
    if code in ACTION_CODES:
        action = answer.get("action") or {}
        url = action.get("url") if isinstance(action, dict) else None
        return PSPResult(Outcome.REQUIRES_ACTION, reference, amount=amount,
                         action_url=url if isinstance(url, str) and url else None,
                         raw_status=code)
    if code == "Refused":
        extra = answer.get("additionalData") or {}
        declined = decline_code(answer.get("refusalReasonCode"), answer.get("refusalReason"),
                                extra.get("refusalReasonRaw") if isinstance(extra, dict)
                                else None)
        return PSPResult(Outcome.DECLINED, reference, amount=amount, decline_code=declined,
                         message=redact(str(answer.get("refusalReason") or "Refused"))
                         or "Your card was declined.", raw_status=code)
    if code == "Error":
        return PSPResult(Outcome.DECLINED, reference, amount=amount,
                         decline_code="processing_error",
                         message=redact(str(answer.get("refusalReason") or
                                            "An error occurred while processing the card.")),
                         raw_status=code)
    if code == "Cancelled":
        return PSPResult(Outcome.DECLINED, reference, amount=amount,
                         decline_code="generic_decline", message="The payment was cancelled.",
                         raw_status=code)
    raise PSPOutcomeUnknown(f"adyen payment {reference} is {code!r}: not final")


PENDING: dict[str, Outcome] = {"capture": Outcome.CAPTURE_PENDING,
                               "cancel": Outcome.VOID_PENDING,
                               "refund": Outcome.REFUND_PENDING}


def modification_result(kind: str, answer: Any, asked: Money | None) -> PSPResult:
    """``status: received``: accepted, the notification tells the outcome. The result's
    reference stays the payment's pspReference (where a repeat must go); the
    modification's own pspReference is ``operation_reference``, which kassa stores on the
    attempt and matches the notification by."""
    if not isinstance(answer, dict) or answer.get("status") != "received" \
            or not isinstance(answer.get("paymentPspReference"), str) \
            or not isinstance(answer.get("pspReference"), str):
        raise MalformedAnswer(f"adyen {kind} answer unreadable")
    amount = money(answer["amount"]) if answer.get("amount") is not None else asked
    return PSPResult(PENDING[kind], answer["paymentPspReference"], amount=amount,
                     raw_status="received", operation_reference=answer["pspReference"])


def classify_transport(exc: httpx.HTTPError, where: str) -> PSPError:
    text = f"{where}: {type(exc).__name__}"
    # no connection, so nothing was sent: over httpx-aiohttp the class alone does not say
    # so (a drop after sending is a ConnectTimeout too; psp/transport_errors.py)
    if isinstance(exc, httpx.PoolTimeout) or (
            isinstance(exc, httpx.TransportError) and never_sent(exc)):
        return PSPUnavailable(text)
    if isinstance(exc, httpx.TimeoutException):
        return PSPTimeout(text)
    return PSPOutcomeUnknown(text)


def classify_status(status: int, body: Any, where: str) -> PSPError:
    error_code = body.get("errorCode") if isinstance(body, dict) else None
    message = body.get("message") if isinstance(body, dict) else None
    text = f"{where}: HTTP {status} {error_code or ''} {redact(str(message or ''))[:200]}"
    if status >= 500:
        return PSPOutcomeUnknown(text)
    if status == 422 and error_code == IDEMPOTENCY_IN_USE:
        return PSPOutcomeUnknown(text)
    if status in (401, 403, 429):
        return PSPUnavailable(text)  # refused before acting (key, account, rate)
    return PSPRefused(text)


def redact(text: str) -> str:
    """Mask anything that looks like a card number, in case Adyen echoes one back."""
    return _PAN_LIKE.sub(lambda m: f"…{m.group()[-4:]}", text)
