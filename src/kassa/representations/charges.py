"""Stripe's charge object: one authorisation attempt, as /v1/charges returns it and
``charge.*`` events carry it."""

from __future__ import annotations

from typing import Any

from kassa.domain import charges
from kassa.domain.charges import ChargeDetails
from kassa.domain.money import Money
from kassa.domain.payments import AttemptStatus, PaymentIntent

_NO_ADDRESS = {"city": None, "country": None, "line1": None, "line2": None,
               "postal_code": None, "state": None}
_NO_BILLING = {"email": None, "name": None, "phone": None, "tax_id": None}


def charge(d: ChargeDetails, *, status: AttemptStatus, error: dict[str, Any] | None,
           amount: Money, payment: PaymentIntent, balance_transaction: str | None,
           disputed: bool, refunds: dict[str, Any], receipt_url: str | None) -> dict[str, Any]:
    """``status``/``error``: the attempt's; ``refunds``: the list object of the charge's
    refunds (empty unless it is the payment's successful charge)."""
    money = charges.amounts(status, payment)
    failure_code, failure_message = charges.failure(status, error)
    billing = dict(_NO_BILLING) | {"address": dict(_NO_ADDRESS)} | (d.billing_details or {})
    return {
        "id": d.id,
        "object": "charge",
        "amount": amount.minor,
        "amount_captured": money.amount_captured,
        "amount_refunded": money.amount_refunded,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": balance_transaction,
        "billing_details": billing,
        "calculated_statement_descriptor": None,
        "captured": money.captured,
        "created": d.created,
        "currency": amount.currency,
        "customer": None,
        "description": payment.description,
        "disputed": disputed,
        "failure_balance_transaction": None,
        "failure_code": failure_code,
        "failure_message": failure_message,
        "fraud_details": {},
        "livemode": False,
        "metadata": payment.metadata,
        "on_behalf_of": None,
        "outcome": charges.outcome(status, error),
        "paid": money.paid,
        "payment_intent": d.payment_intent_id,
        "payment_method": d.payment_method,
        "payment_method_details": _method_details(d, status, error, amount),
        "receipt_email": _from_intent(payment, "receipt_email"),
        "receipt_number": None,
        "receipt_url": receipt_url,
        "refunded": money.refunded,
        "refunds": refunds,
        "review": None,
        "shipping": _from_intent(payment, "shipping"),
        "source": None,
        "source_transfer": None,
        "statement_descriptor": _from_intent(payment, "statement_descriptor"),
        "statement_descriptor_suffix": _from_intent(payment, "statement_descriptor_suffix"),
        "status": money.status,
        "transfer_data": None,
        "transfer_group": None,
    }


def _from_intent(payment: PaymentIntent, name: str) -> Any:
    """A field the charge copies from its intent, where the intent has it (receipt_email,
    shipping and the statement descriptors arrive on intents beside charges); else null."""
    return getattr(payment, name, None)


def _method_details(d: ChargeDetails, status: AttemptStatus, error: dict[str, Any] | None,
                    amount: Money) -> dict[str, Any] | None:
    if d.card is None:
        return None
    c = d.card
    return {"type": "card", "card": {
        "amount_authorized": amount.minor if status is AttemptStatus.SUCCEEDED else None,
        "authorization_code": None,
        "brand": c.brand,
        "checks": {"address_line1_check": None, "address_postal_code_check": None,
                   "cvc_check": charges.cvc_check(status, error)},
        "country": c.country,
        "exp_month": c.exp_month,
        "exp_year": c.exp_year,
        "funding": c.funding,
        "installments": None,
        "last4": c.last4,
        "mandate": None,
        "network": c.brand,
        "network_transaction_id": None,
        "regulated_status": None,
        "three_d_secure": None,
        "wallet": None,
    }}
