"""POST /v1/payment_intents/{id}: change an intent's terms before it is confirmed, and its
descriptive fields after; and the client_secret check a publishable key's reads and
confirmations go through.

An update is one compare-and-swap on the intent's version, so it cannot interleave with a
confirm, capture or cancel: whichever commits second is refused with a conflict before any
PSP call, and the next authorisation always runs on the terms the intent shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kassa import representations
from kassa.db import ops
from kassa.domain import intent_fields
from kassa.domain.errors import InvalidRequest
from kassa.services import saved_cards
from kassa.services.client_secret import verify_client_secret
from kassa.services.confirm import _check_payment_method
from kassa.services.context import Kassa
from kassa.services.resume import load
from kassa.services.uow import IdempotencyHandle, UnitOfWork

PI = representations.payment_intent


async def update(kassa: Kassa, *, merchant_id: str, payment_id: str,
                 changes: Mapping[str, Any], idempotency: IdempotencyHandle | None = None
                 ) -> dict[str, Any]:
    """``changes``: only the parameters the request gave (``metadata`` as a patch: a key
    mapped to None is removed; ``metadata`` None clears all)."""
    customer_given = "customer" in changes
    customer = changes.get("customer")
    changes = {k: v for k, v in changes.items() if k != "customer"}
    p = await load(kassa, merchant_id=merchant_id, payment_id=payment_id)
    if changes.get("payment_method") is not None:
        currency = str(changes.get("currency") or p.amount.currency)
        await _check_payment_method(kassa, merchant_id, str(changes["payment_method"]),
                                    currency)
    intent_fields.update(p, changes)
    if customer_given and customer != p.customer:
        # Stripe: a customer once set stays; kassa sets it only before confirmation, so an
        # authorisation never runs for another customer than the one the intent shows
        if p.customer is not None:
            raise InvalidRequest("The customer of a PaymentIntent cannot be changed once set.",
                                 param="customer")
        if p.status not in intent_fields.BEFORE_CONFIRMATION:
            raise InvalidRequest(f"You cannot set the customer of a PaymentIntent with status "
                                 f"{p.status.value}.", param="customer",
                                 code="payment_intent_unexpected_state")
        p.customer = customer
    if customer_given or changes.get("payment_method") is not None:
        await saved_cards.check_intent(kassa, merchant_id=merchant_id, customer=p.customer,
                                       payment_method=p.payment_method, payment_intent=p.id)
    async with UnitOfWork(kassa, idempotency) as uow:
        uow.add(ops.UpdatePayment.of(p))
        # the answer commits with the change: a retry replays it, never re-applies it
        await uow.commit(response=PI(p))
    return PI(p)


async def retrieve_with_client_secret(kassa: Kassa, *, merchant_id: str, payment_id: str,
                                      client_secret: str | None) -> dict[str, Any]:
    """What a publishable key holding the client_secret reads: Stripe's reduced view."""
    p = await load(kassa, merchant_id=merchant_id, payment_id=payment_id)
    verify_client_secret(p, client_secret)
    return representations.publishable_payment_intent(p)
