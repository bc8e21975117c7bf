"""The PaymentIntent fields a Stripe integration sends besides amount and card: Stripe's rules
for each, and which of them an update may change in which status.

Values arrive already parsed (the API's schemas check their shapes); the rules here are the
ones that need Stripe's knowledge: statement descriptors' characters and lengths, an e-mail
address, what a given status still lets change (so that an authorisation never runs on other
terms than the ones the intent shows).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kassa.domain.errors import InvalidRequest
from kassa.domain.money import Money, UnknownCurrency, normalize_currency
from kassa.domain.payments import PaymentIntent, PaymentStatus, validate_amount

S = PaymentStatus

CONFIRMATION_METHODS = frozenset({"automatic", "manual"})
CAPTURE_METHODS = frozenset({"automatic", "automatic_async", "manual"})
SETUP_FUTURE_USAGES = frozenset({"on_session", "off_session"})

# Statuses in which the terms of the next authorisation (amount, currency, card, capture)
# may still change. Stripe also allows requires_action; kassa does not: an authorisation is
# open at the PSP on the old terms then, and could still complete on them.
BEFORE_CONFIRMATION = frozenset({S.REQUIRES_PAYMENT_METHOD, S.REQUIRES_CONFIRMATION})
# Descriptive fields change in any status but processing (a PSP call is in flight) and
# canceled (Stripe refuses updates to a canceled intent).
DESCRIPTIVE = frozenset({"description", "metadata", "receipt_email", "shipping"})

_DESCRIPTOR_FORBIDDEN = set("<>\\'\"*")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def statement_descriptor(value: str | None, *, param: str) -> str | None:
    """Stripe's rules: at most 22 Latin characters, at least one letter, none of < > \\ ' " *."""
    if value is None:
        return None
    if not 1 <= len(value) <= 22:
        raise InvalidRequest(f"Invalid {param}: it must be 1 to 22 characters long.",
                             param=param)
    if not value.isascii() or not value.isprintable():
        raise InvalidRequest(f"Invalid {param}: only Latin characters are allowed.",
                             param=param)
    if _DESCRIPTOR_FORBIDDEN & set(value):
        raise InvalidRequest(f"Invalid {param}: it cannot contain any of < > \\ ' \" *.",
                             param=param)
    if not any(c.isalpha() for c in value):
        raise InvalidRequest(f"Invalid {param}: it must contain at least one letter.",
                             param=param)
    return value


def receipt_email(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) > 800 or not _EMAIL.match(value):
        raise InvalidRequest(f"Invalid email address: {value[:100]}", param="receipt_email",
                             code="email_invalid")
    return value


def choice(value: str | None, allowed: frozenset[str], *, param: str) -> str | None:
    if value is not None and value not in allowed:
        raise InvalidRequest(f"Invalid {param}: must be one of {', '.join(sorted(allowed))}",
                             param=param)
    return value


def card_capture_method(options: Mapping[str, Any] | None) -> str | None:
    """``payment_method_options[card][capture_method]``: overrides the intent's for cards."""
    card = (options or {}).get("card") or {}
    value = card.get("capture_method")
    return str(value) if value else None


def set_fields(p: PaymentIntent, fields: Mapping[str, Any]) -> None:
    """Validate and store the optional fields of a create or an update (absent: unchanged)."""
    for name in ("statement_descriptor", "statement_descriptor_suffix"):
        if name in fields:
            setattr(p, name, statement_descriptor(fields[name], param=name))
    if "receipt_email" in fields:
        p.receipt_email = receipt_email(fields["receipt_email"])
    if "setup_future_usage" in fields:
        p.setup_future_usage = choice(fields["setup_future_usage"], SETUP_FUTURE_USAGES,
                                      param="setup_future_usage")
    if "capture_method" in fields:
        p.capture_method = str(choice(fields["capture_method"], CAPTURE_METHODS,
                                      param="capture_method"))
    for name in ("description", "metadata", "shipping", "payment_method_options",
                 "automatic_payment_methods"):
        if name in fields:
            setattr(p, name, fields[name])


def currency(code: str, *, param: str = "currency") -> str:
    try:
        return normalize_currency(code)
    except UnknownCurrency:
        raise InvalidRequest(f"Invalid currency: {code}. Currency must be a supported ISO 4217 "
                             "code.", param=param, code="invalid_currency") from None


def merge_metadata(current: Mapping[str, str], patch: Mapping[str, str | None] | None
                   ) -> dict[str, str]:
    """Stripe's metadata update: given keys are set, a key given empty is removed, and
    ``metadata=""`` (``patch`` None here) removes them all."""
    if patch is None:
        return {}
    merged = {**current}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    if len(merged) > 50:
        raise InvalidRequest("Invalid metadata: at most 50 keys", param="metadata")
    return merged


def merge_options(current: Mapping[str, Any] | None, patch: Mapping[str, Any] | None
                  ) -> dict[str, Any] | None:
    """``payment_method_options[card][…]``: given keys replace, a key given "" is unset."""
    card = {**((current or {}).get("card") or {}), **((patch or {}).get("card") or {})}
    card = {k: v for k, v in card.items() if v not in ("", None)}
    return {"card": card} if card else None


def update(p: PaymentIntent, changes: Mapping[str, Any]) -> None:
    """Apply an update to ``p`` as Stripe's POST /v1/payment_intents/{id} does, or refuse it
    whole (nothing changes) when the status does not allow one of the fields. ``metadata`` in
    ``changes`` is a patch (see ``merge_metadata``); ``payment_method`` is checked to exist
    by the caller."""
    if p.status in (S.PROCESSING, S.CANCELED):
        raise InvalidRequest(
            f"You cannot update this PaymentIntent because it has a status of {p.status.value}.",
            param=next(iter(sorted(changes)), None), code="payment_intent_unexpected_state")
    terms = sorted(set(changes) - DESCRIPTIVE)
    if terms and p.status not in BEFORE_CONFIRMATION:
        raise InvalidRequest(
            f"You cannot update {terms[0]} on this PaymentIntent because it has a status of "
            f"{p.status.value}; it can be updated only while the status is "
            "requires_payment_method or requires_confirmation.",
            param=terms[0], code="payment_intent_unexpected_state")
    fields = dict(changes)
    amount = fields.pop("amount", p.amount.minor)
    validate_amount(amount)
    code = currency(fields.pop("currency", p.currency))
    metadata = merge_metadata(p.metadata, fields.pop("metadata")) if "metadata" in fields \
        else p.metadata
    payment_method = fields.pop("payment_method", None)
    if "payment_method_options" in fields:
        fields["payment_method_options"] = merge_options(p.payment_method_options,
                                                         fields["payment_method_options"])
    set_fields(p, fields)  # validates before anything below changes
    if code != p.currency:
        # a conversion a declined confirmation fixed was for the old currency: the next
        # confirmation decides anew (domain/fx.py); nothing was captured under it
        p.fx = None
    p.amount = Money(amount, code)
    p.metadata = metadata
    if payment_method is not None:
        p.attach_payment_method(payment_method)
