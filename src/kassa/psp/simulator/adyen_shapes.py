"""Adyen's request, answer and notification shapes for the simulator's Adyen dialect
(Checkout API v71 and standard notifications, as in Adyen/adyen-openapi's
CheckoutService-v71 and Webhooks-v1): reading requests, the books' outcomes as
``resultCode``/``refusalReason``, notification items and their HMAC signature.

Pure functions only; routes_adyen.py runs them over the shared books. The adapter side
(psp/adyen/) has its own reading and verifying code, so a mistake here is not mirrored
there and hidden.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from kassa.domain.money import EXPONENTS, MAX_AMOUNT
from kassa.psp.simulator.books import Body, InvalidRequest

MAX_KEY_LENGTH = 64  # Adyen's Idempotency-Key limit
TEST_PREFIX = "test_"  # Adyen's unencrypted stand-in for client-side encrypted fields

# the books' decline codes (Stripe's words) as Adyen's refusalReason and its code; the raw
# acquirer answer (ISO 8583) tells lost from stolen, as Adyen's refusalReasonRaw does
REFUSALS: dict[str, tuple[str, str, str]] = {  # decline → (code, refusalReason, raw)
    "generic_decline": ("2", "Refused", "05 : Do not honor"),
    "insufficient_funds": ("12", "Not enough balance", "51 : Insufficient funds"),
    "lost_card": ("5", "Blocked Card", "41 : Lost card"),
    "stolen_card": ("5", "Blocked Card", "43 : Stolen card"),
    "expired_card": ("6", "Expired Card", "54 : Expired card"),
    "incorrect_cvc": ("24", "CVC Declined", "N7 : CVV2 failure"),
    "incorrect_number": ("8", "Invalid Card Number", "14 : Invalid card number"),
    "processing_error": ("4", "Acquirer Error", "96 : System malfunction"),
    "authentication_failed": ("11", "3D Not Authenticated", "3D Secure failed"),
    "authentication_required": ("38", "Authentication required",
                                "1A : Additional customer authentication required"),
}


class AdyenError(Exception):
    """An Adyen ServiceError answer: ``{status, errorCode, message, errorType}``."""

    def __init__(self, status: int, code: str, message: str, kind: str = "validation") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.kind = kind

    def body(self) -> Body:
        return {"status": self.status, "errorCode": self.code, "message": str(self),
                "errorType": self.kind}


def psp_reference(seed: str) -> str:
    """Adyen's 16-character pspReference, derived from the books' id of the object (so the
    same object always has the same reference, also after a restart)."""
    digest = hashlib.sha256(seed.encode()).hexdigest().upper()
    return "".join(c if c.isdigit() else str(ord(c) % 10) for c in digest[:16])


def _invalid(message: str, code: str = "702") -> AdyenError:
    return AdyenError(422, code, message)


def amount_of(body: Body, *, required: bool = True) -> tuple[int, str] | None:
    """``amount: {value, currency}`` as (minor units, lower-case currency)."""
    amount = body.get("amount")
    if amount is None and not required:
        return None
    if not isinstance(amount, dict):
        raise _invalid("Required field 'amount' is not provided.", "100")
    value, currency = amount.get("value"), amount.get("currency")
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_AMOUNT:
        raise _invalid("Invalid amount specified", "137")
    if not isinstance(currency, str) or currency.lower() not in EXPONENTS \
            or currency != currency.upper():
        raise _invalid("Currency code is not valid", "138")
    return value, currency.lower()


def text(body: Body, name: str, *, required: bool = True, limit: int = 255) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise _invalid(f"Required field '{name}' is not provided or invalid.", "100")
    return value


def _field(method: Body, plain: str, encrypted: str) -> str:
    """A card field, raw (``number``…) or Adyen test-encrypted (``test_<value>``)."""
    value = method.get(plain)
    if value is None:
        sealed = method.get(encrypted)
        if isinstance(sealed, str) and sealed.startswith(TEST_PREFIX):
            value = sealed[len(TEST_PREFIX):]
    if not isinstance(value, str) or not value:
        raise _invalid(f"paymentMethod.{plain} (or {encrypted}) is required.", "14_004")
    return value


RECURRING_MODELS = ("CardOnFile", "Subscription", "UnscheduledCardOnFile")


def stored_method_of(body: Body) -> str | None:
    """``paymentMethod.storedPaymentMethodId`` (type ``scheme``), None for a card."""
    method = body.get("paymentMethod")
    if not isinstance(method, dict) or method.get("storedPaymentMethodId") is None:
        return None
    stored = method.get("storedPaymentMethodId")
    if method.get("type") not in ("scheme", None) or not isinstance(stored, str) \
            or not stored or len(stored) > 64:
        raise _invalid("paymentMethod.storedPaymentMethodId must be a string.", "14_004")
    return stored


def card_of(body: Body) -> tuple[str, int, int, str | None]:
    """``paymentMethod`` of type ``scheme``: (number, month, year, cvc)."""
    method = body.get("paymentMethod")
    if not isinstance(method, dict) or method.get("type") != "scheme":
        raise _invalid("paymentMethod of type scheme is required.", "14_004")
    number = _field(method, "number", "encryptedCardNumber")
    month = _field(method, "expiryMonth", "encryptedExpiryMonth")
    year = _field(method, "expiryYear", "encryptedExpiryYear")
    cvc: str | None = None
    if method.get("cvc") is not None or method.get("encryptedSecurityCode") is not None:
        cvc = _field(method, "cvc", "encryptedSecurityCode")
    if not number.isdigit() or not month.isdigit() or not year.isdigit() \
            or not 1 <= int(month) <= 12 or len(year) != 4:
        raise _invalid("Invalid card details.", "101")
    return number, int(month), int(year), cvc


def manual_capture(body: Body) -> bool:
    """Manual capture: ``additionalData.manualCapture`` "true"; else the payment is
    captured at once (``captureDelayHours`` 0 or absent: this test account's default)."""
    extra = body.get("additionalData") or {}
    if not isinstance(extra, dict):
        raise _invalid("additionalData must be an object.")
    if str(extra.get("manualCapture", "false")).lower() == "true":
        return True
    delay = body.get("captureDelayHours")
    if delay is not None and (isinstance(delay, bool) or not isinstance(delay, int)
                              or not 0 <= delay <= 672):
        raise _invalid("captureDelayHours must be 0..672.")
    return bool(delay)  # a delay of some hours: captured later, so manual until then


def metadata_of(body: Body) -> dict[str, str]:
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict) or len(metadata) > 20 or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise _invalid("metadata must be at most 20 string pairs.")
    return dict(metadata)


def amount_view(minor: int, currency: str) -> Body:
    return {"value": minor, "currency": currency.upper()}


def payment_response(auth: Body, record: Body, *, redirect_url: str | None) -> Body:
    """The books' authorization as Adyen's PaymentResponse."""
    out: Body = {"pspReference": record["pspReference"],
                 "merchantReference": record["reference"],
                 "amount": amount_view(auth["amount"], auth["currency"])}
    status = auth["status"]
    if status in ("authorized", "captured"):
        out["resultCode"] = "Authorised"
    elif status == "requires_action":
        out["resultCode"] = "RedirectShopper"
        out["action"] = {"type": "redirect", "method": "GET", "paymentMethodType": "scheme",
                         "url": redirect_url}
    elif status in ("voided", "expired"):
        out["resultCode"] = "Cancelled"
    else:
        code, reason, raw = REFUSALS.get(auth.get("decline_code") or "generic_decline",
                                         REFUSALS["generic_decline"])
        out.update(resultCode="Refused", refusalReason=reason, refusalReasonCode=code,
                   additionalData={"refusalReasonRaw": raw})
    return out


def modification_response(kind: str, record: Body, mod: Body) -> Body:
    """PaymentCaptureResponse / PaymentCancelResponse / PaymentRefundResponse."""
    out: Body = {"merchantAccount": record["merchantAccount"],
                 "paymentPspReference": record["pspReference"],
                 "pspReference": mod["pspReference"], "status": "received"}
    if mod.get("reference") is not None:
        out["reference"] = mod["reference"]
    if kind != "cancel":
        out["amount"] = mod["amount"]
    return out


def event_date(at: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(at or time.time()))


def signing_string(item: Body) -> str:
    """Adyen's HMAC payload: the eight fields joined by ``:``; a missing one is empty."""
    amount = item.get("amount") or {}
    parts = [item.get("pspReference"), item.get("originalReference"),
             item.get("merchantAccountCode"), item.get("merchantReference"),
             amount.get("value"), amount.get("currency"), item.get("eventCode"),
             item.get("success")]
    return ":".join("" if p is None else str(p) for p in parts)


def sign(item: Body, hex_key: str) -> str:
    mac = hmac.new(bytes.fromhex(hex_key), signing_string(item).encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def notification_item(*, event_code: str, success: bool, psp: str, merchant_account: str,
                      merchant_reference: str | None, amount: Body | None,
                      original: str | None = None, reason: str | None = None,
                      additional: dict[str, str] | None = None,
                      hex_key: str | None) -> Body:
    """One ``NotificationRequestItem``, signed with ``hex_key`` (unsigned without one)."""
    item: Body = {"eventCode": event_code, "success": "true" if success else "false",
                  "eventDate": event_date(), "merchantAccountCode": merchant_account,
                  "pspReference": psp, "paymentMethod": "visa"}
    if original is not None:
        item["originalReference"] = original
    if merchant_reference is not None:
        item["merchantReference"] = merchant_reference
    if amount is not None:
        item["amount"] = amount
    if reason is not None:
        item["reason"] = reason
    extra: dict[str, Any] = dict(additional or {})
    if hex_key is not None:
        extra["hmacSignature"] = sign(item, hex_key)
    if extra:
        item["additionalData"] = extra
    return item


def notification(items: list[Body]) -> Body:
    return {"live": "false",
            "notificationItems": [{"NotificationRequestItem": i} for i in items]}


def check_api_key(given: str | None, expected: str | None) -> None:
    if not given or (expected is not None and not hmac.compare_digest(given, expected)):
        raise AdyenError(401, "000", "HTTP Status Response - Unauthorized", "security")


def reject_invalid(exc: InvalidRequest) -> AdyenError:
    return _invalid(str(exc))
