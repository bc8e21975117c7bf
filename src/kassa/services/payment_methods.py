"""Payment methods as Stripe objects: a card the vault tokenised, from the vault's non-secret
table (the serving role cannot read anything else of the vault's schema); one of the
simulator's test cards (``pm_card_visa`` …), from what the resolver knows of it."""

from __future__ import annotations

from typing import Any

from kassa import representations
from kassa.domain.errors import NotFound
from kassa.services.context import Kassa
from kassa.vault import store

_NO_CHECKS = {"address_line1_check": None, "address_postal_code_check": None,
              "cvc_check": None}


async def retrieve(kassa: Kassa, *, merchant_id: str, payment_method_id: str
                   ) -> dict[str, Any]:
    row = await store.get_payment_method(kassa.pool, merchant_id=merchant_id,
                                         payment_method_id=payment_method_id)
    if row is None:
        raise NotFound(f"No such PaymentMethod: '{payment_method_id:.64}'", param="id")
    return representations.payment_method(row)


async def payment_method_object(kassa: Kassa, *, merchant_id: str, payment_method: str,
                                created: int) -> dict[str, Any] | None:
    """The full payment_method object (what a decline carries), or None when the id no
    longer resolves."""
    row = await store.get_payment_method(kassa.pool, merchant_id=merchant_id,
                                         payment_method_id=payment_method)
    if row is not None:  # the vault's card: its stored facts, never the resolver's placeholder
        return representations.payment_method(row)
    card = await kassa.payment_methods.resolve(merchant_id=merchant_id,
                                               payment_method=payment_method)
    if card is None:
        return None
    return representations.payment_method({
        "id": payment_method, "brand": card.brand, "billing_details": {},
        "checks": dict(_NO_CHECKS), "country": card.country, "exp_month": card.exp_month,
        "exp_year": card.exp_year, "fingerprint": None, "funding": card.funding,
        "last4": card.number[-4:], "created": created, "customer": None, "livemode": False,
        "metadata": {}})
