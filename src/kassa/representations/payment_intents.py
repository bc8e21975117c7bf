"""Stripe's payment_intent object, in full (secret key) and as a publishable key sees it."""

from __future__ import annotations

from typing import Any

from kassa.domain.payments import PaymentIntent

# Stripe's card options, as it renders them when nothing was asked for
_CARD_OPTIONS = {"installments": None, "mandate_options": None, "network": None,
                 "request_three_d_secure": "automatic"}
# what a publishable key (with the client_secret) is shown: Stripe's reduced view
PUBLISHABLE_FIELDS = ("id", "object", "amount", "automatic_payment_methods", "canceled_at",
                      "cancellation_reason", "capture_method", "client_secret",
                      "confirmation_method", "created", "currency", "description",
                      "last_payment_error", "livemode", "next_action", "payment_method",
                      "payment_method_configuration_details", "payment_method_types",
                      "processing", "receipt_email", "setup_future_usage", "shipping",
                      "status")


def _shipping(shipping: dict[str, Any] | None) -> dict[str, Any] | None:
    if shipping is None:
        return None
    address = shipping.get("address") or {}
    return {
        "address": {k: address.get(k) for k in ("city", "country", "line1", "line2",
                                                 "postal_code", "state")},
        **{k: shipping.get(k) for k in ("carrier", "name", "phone", "tracking_number")},
    }


def _automatic_payment_methods(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    return {"allow_redirects": value.get("allow_redirects") or "always",
            "enabled": bool(value.get("enabled"))}


def _payment_method_options(value: dict[str, Any] | None) -> dict[str, Any]:
    card = {k: v for k, v in ((value or {}).get("card") or {}).items() if v is not None}
    return {"card": {**_CARD_OPTIONS, **card}}


def payment_intent(p: PaymentIntent) -> dict[str, Any]:
    """Every field Stripe always returns is present, null when kassa has no value for it."""
    return {
        "id": p.id,
        "object": "payment_intent",
        "amount": p.amount.minor,
        "amount_capturable": p.amount_capturable,
        "amount_received": p.amount_received,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": _automatic_payment_methods(p.automatic_payment_methods),
        "canceled_at": p.canceled_at,
        "cancellation_reason": p.cancellation_reason,
        "capture_method": p.capture_method,
        "client_secret": p.client_secret,
        "confirmation_method": p.confirmation_method,
        "created": p.created,
        "currency": p.currency,
        "customer": p.customer,
        "customer_account": None,
        "description": p.description,
        "excluded_payment_method_types": None,
        "last_payment_error": p.last_payment_error,
        "latest_charge": p.latest_charge,
        "livemode": False,
        "metadata": p.metadata,
        "next_action": p.next_action,
        "on_behalf_of": None,
        "payment_method": p.payment_method,
        "payment_method_configuration_details": None,
        "payment_method_options": _payment_method_options(p.payment_method_options),
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": p.receipt_email,
        "review": None,
        "setup_future_usage": p.setup_future_usage,
        "shipping": _shipping(p.shipping),
        "source": None,
        "statement_descriptor": p.statement_descriptor,
        "statement_descriptor_suffix": p.statement_descriptor_suffix,
        "status": p.status.value,
        "transfer_data": None,
        "transfer_group": None,
    }


def publishable_payment_intent(p: PaymentIntent) -> dict[str, Any]:
    """What Stripe shows a publishable key holding the client_secret (Stripe.js): no
    metadata, amounts received or capturable, charges or descriptors."""
    return publishable_view(payment_intent(p))


def publishable_view(obj: dict[str, Any]) -> dict[str, Any]:
    """The publishable key's view of a rendered payment_intent (or of an error body that
    carries one, as a decline does)."""
    if "error" in obj and isinstance(obj["error"].get("payment_intent"), dict):
        return {"error": {**obj["error"],
                          "payment_intent": publishable_view(obj["error"]["payment_intent"])}}
    if obj.get("object") != "payment_intent":
        return obj
    return {name: obj[name] for name in PUBLISHABLE_FIELDS if name in obj}
