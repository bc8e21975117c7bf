"""Stripe-shaped representations: the objects the API returns and events carry, one module
per resource.

Pure functions from domain objects (or the rows the read side returns) to JSON-ready dicts.
They import only ``kassa.domain``; services and webhooks call them, the API renders what the
services return. The OpenAPI models of these shapes are in ``kassa.api.responses``.
"""

from __future__ import annotations

from kassa.representations.balance import balance, balance_transaction
from kassa.representations.charges import charge
from kassa.representations.customers import customer, deleted_customer
from kassa.representations.disputes import dispute
from kassa.representations.events import event
from kassa.representations.lists import list_object, search_result
from kassa.representations.payment_intents import (
    payment_intent,
    publishable_payment_intent,
    publishable_view,
)
from kassa.representations.payment_methods import payment_method
from kassa.representations.refunds import refund
from kassa.representations.webhook_deliveries import (
    delivery_public_id,
    parse_delivery_id,
    webhook_delivery,
)
from kassa.representations.webhook_endpoints import deleted_webhook_endpoint, webhook_endpoint

__all__ = [
    "balance",
    "balance_transaction",
    "charge",
    "customer",
    "deleted_customer",
    "deleted_webhook_endpoint",
    "delivery_public_id",
    "dispute",
    "event",
    "list_object",
    "parse_delivery_id",
    "payment_intent",
    "payment_method",
    "publishable_payment_intent",
    "publishable_view",
    "refund",
    "search_result",
    "webhook_delivery",
    "webhook_endpoint",
]
