"""Stripe's statuses and errors as kassa's outcomes and PSP error classes — here only.

PaymentIntent status → Outcome (authorisation): ``requires_capture`` AUTHORIZED,
``succeeded`` CAPTURED, ``requires_action`` REQUIRES_ACTION (``next_action``'s URL),
``requires_payment_method`` DECLINED (``last_payment_error``), ``canceled`` VOIDED;
``processing``/``requires_confirmation`` say nothing final yet: PSPOutcomeUnknown, so
recovery looks again. Refund ``succeeded`` REFUNDED, ``pending``/``requires_action``
REFUND_PENDING, ``failed``/``canceled`` FAILED (``failure_reason``).

Errors (the SDK's classes): CardError (402) is a decline, a result; a connection that could
not be opened (refused, DNS, connect timeout) PSPUnavailable — the request never left;
any other transport failure (read timeout: PSPTimeout; reset after sending), 5xx and
``api_error``, 409 (a concurrent request holds the key) and IdempotencyError (the key is
Stripe's already, for other parameters) PSPOutcomeUnknown; 429 (rate limited, or
``lock_timeout``: refused before acting) PSPUnavailable; other 4xx PSPRefused.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import httpx
import stripe

from kassa.domain.money import Money, UnknownCurrency
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

# keys of kassa's ids in Stripe metadata, so an attempt can be found again
ATTEMPT_KEY = "kassa_attempt"
PAYMENT_KEY = "kassa_payment"
MERCHANT_KEY = "kassa_merchant"

AUTHORIZATION_OUTCOMES: dict[str, Outcome] = {
    "requires_capture": Outcome.AUTHORIZED,
    "succeeded": Outcome.CAPTURED,
    "requires_action": Outcome.REQUIRES_ACTION,
    "requires_payment_method": Outcome.DECLINED,
    "canceled": Outcome.VOIDED,
}
REFUND_OUTCOMES: dict[str, Outcome] = {
    "succeeded": Outcome.REFUNDED,
    "pending": Outcome.REFUND_PENDING,
    "requires_action": Outcome.REFUND_PENDING,
    "failed": Outcome.FAILED,
    "canceled": Outcome.FAILED,
}
_PAN_LIKE = re.compile(r"\d{12,19}")


def field(obj: Any, name: str) -> Any:
    """A field of a StripeObject or a plain dict (webhook payloads, recorded fixtures)."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    try:
        return obj[name]
    except KeyError:
        return None


def object_id(value: Any) -> str | None:
    """An expandable field: an id, or the object itself (localstripe embeds it)."""
    if value is None or isinstance(value, str):
        return value
    found = field(value, "id")
    return found if isinstance(found, str) else None


def money(minor: Any, currency: Any) -> Money:
    if isinstance(minor, bool) or not isinstance(minor, int) or not isinstance(currency, str):
        raise ValueError("amount and currency expected")
    return Money(minor, currency.lower())


def action_url(next_action: Any) -> str | None:
    """Where the customer authenticates: ``redirect_to_url.url`` (a return_url was sent),
    else the 3-D Secure page inside ``use_stripe_sdk`` when Stripe gives one."""
    if next_action is None:
        return None
    redirect = field(next_action, "redirect_to_url")
    url = field(redirect, "url")
    if isinstance(url, str) and url:
        return url
    sdk = field(next_action, "use_stripe_sdk")
    url = field(sdk, "stripe_js")
    return url if isinstance(url, str) and url else None


class MalformedAnswer(PSPOutcomeUnknown):
    """Stripe's answer (or event) cannot be read as the object it claims to be."""


def _readable(read: Callable[[Any], PSPResult]) -> Callable[[Any], PSPResult]:
    """An answer kassa cannot read (a field missing or of the wrong type, an unknown
    currency) says nothing of what Stripe did: the outcome is unknown, recovery asks."""
    @functools.wraps(read)
    def reading(obj: Any) -> PSPResult:
        try:
            return read(obj)
        except (KeyError, TypeError, ValueError, UnknownCurrency) as exc:
            raise MalformedAnswer(f"stripe answered a malformed {field(obj, 'object')} "
                                  f"({type(exc).__name__})") from exc
    return reading


def _final(obj: Any, outcomes: dict[str, Outcome]) -> tuple[str, Outcome, str]:
    """(Stripe's status, kassa's outcome, the object's id); PSPOutcomeUnknown when the
    status says nothing final yet."""
    status = str(field(obj, "status"))
    outcome = outcomes.get(status)
    reference = object_id(obj)
    if outcome is None or reference is None:
        raise PSPOutcomeUnknown(f"stripe {field(obj, 'object')} {reference} is {status!r}: "
                                "not final")
    return status, outcome, reference


@_readable
def payment_intent_result(pi: Any) -> PSPResult:
    """An authorisation's outcome from the PaymentIntent it made."""
    status, outcome, reference = _final(pi, AUTHORIZATION_OUTCOMES)
    currency = field(pi, "currency")
    amount: Money | None = money(field(pi, "amount"), currency)
    if outcome is Outcome.CAPTURED:
        received = field(pi, "amount_received")
        # what moved; localstripe has no amount_received: kassa's own amount stands then
        amount = money(received, currency) if isinstance(received, int) else None
    elif outcome is Outcome.AUTHORIZED:
        capturable = field(pi, "amount_capturable")
        amount = money(capturable, currency) if isinstance(capturable, int) else amount
    decline_code = message = None
    if outcome is Outcome.DECLINED:
        error = field(pi, "last_payment_error") or {}
        decline_code = decline_of(field(error, "code"), field(error, "decline_code"))
        message = field(error, "message") or "Your card was declined."
    return PSPResult(outcome=outcome, psp_reference=reference, amount=amount,
                     decline_code=decline_code, message=redact(message),
                     action_url=action_url(field(pi, "next_action"))
                     if outcome is Outcome.REQUIRES_ACTION else None,
                     raw_status=status)


def _after(pi: Any, operation: str, expected: Outcome) -> PSPResult:
    """The intent after a capture or cancel: in the state that operation leads to, or the
    outcome is not known yet."""
    result = payment_intent_result(pi)
    if result.outcome is not expected:
        raise PSPOutcomeUnknown(f"stripe {operation} left {result.psp_reference} "
                                f"{result.raw_status!r}")
    return result


@_readable
def capture_result(pi: Any) -> PSPResult:
    """A capture's outcome: the PaymentIntent ``succeeded``; its charge is the reference."""
    result = _after(pi, "capture", Outcome.CAPTURED)
    charge = object_id(field(pi, "latest_charge")) or result.psp_reference
    return PSPResult(Outcome.CAPTURED, charge, amount=result.amount, raw_status="succeeded")


@_readable
def void_result(pi: Any) -> PSPResult:
    return _after(pi, "cancel", Outcome.VOIDED)


@_readable
def refund_result(refund: Any) -> PSPResult:
    status, outcome, reference = _final(refund, REFUND_OUTCOMES)
    reason = field(refund, "failure_reason") if outcome is Outcome.FAILED else None
    return PSPResult(outcome=outcome, psp_reference=reference,
                     amount=money(field(refund, "amount"), field(refund, "currency")),
                     decline_code=reason or ("refund_failed" if outcome is Outcome.FAILED
                                             else None),
                     message="The refund failed." if outcome is Outcome.FAILED else None,
                     raw_status=status)


def decline_of(code: Any, decline_code: Any) -> str:
    """Stripe's decline_code, or its error code when it gives none (``card_declined``
    alone is Stripe's generic decline; localstripe sends no decline_code)."""
    if isinstance(decline_code, str) and decline_code:
        return decline_code
    if code == "card_declined" or not isinstance(code, str) or not code:
        return "generic_decline"
    return code


def declined(exc: stripe.CardError) -> PSPResult:
    """A card error is the issuer's (or Stripe's) decline: a result, not an exception."""
    error = exc.error
    pi = field(error, "payment_intent") if error is not None else None
    return PSPResult(outcome=Outcome.DECLINED, psp_reference=object_id(pi) or "",
                     decline_code=decline_of(exc.code, field(error, "decline_code")),
                     message=redact(exc.user_message or "Your card was declined."),
                     raw_status="card_error")


def classify(exc: stripe.StripeError, where: str) -> PSPError:
    """The PSP error class for anything but a card decline."""
    text = f"{where}: {type(exc).__name__} {(redact(str(exc.user_message or exc)) or '')[:300]}"
    if isinstance(exc, stripe.APIConnectionError):
        cause = exc.__cause__
        # no connection, so the request was never sent (over httpx-aiohttp the class alone
        # does not say so: psp/transport_errors.py)
        if isinstance(cause, httpx.TransportError) and never_sent(cause):
            return PSPUnavailable(text)
        if isinstance(cause, httpx.TimeoutException):
            return PSPTimeout(text)
        return PSPOutcomeUnknown(text)
    status = exc.http_status or 0
    if isinstance(exc, stripe.RateLimitError) or status == 429:
        return PSPUnavailable(text)  # refused before acting; a later repeat may pass
    if isinstance(exc, stripe.IdempotencyError) or status == 409 or status >= 500 \
            or isinstance(exc, stripe.APIError) or not status:
        return PSPOutcomeUnknown(text)
    return PSPRefused(text)


def redact(text: str | None) -> str | None:
    """Mask anything that looks like a card number, in case Stripe echoes one back."""
    if text is None:
        return None
    return _PAN_LIKE.sub(lambda m: f"…{m.group()[-4:]}", text)
