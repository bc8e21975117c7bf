"""Payment methods as Stripe objects, from what the resolver (the vault's seam) knows."""

from __future__ import annotations

from typing import Any

from kassa import representations
from kassa.services.context import Kassa


async def payment_method_object(kassa: Kassa, *, merchant_id: str, payment_method: str,
                                created: int) -> dict[str, Any] | None:
    """The full payment_method object, or None when the id no longer resolves."""
    card = await kassa.payment_methods.resolve(merchant_id=merchant_id,
                                               payment_method=payment_method)
    if card is None:
        return None
    return representations.payment_method(
        payment_method, brand=card.brand, last4=card.number[-4:], exp_month=card.exp_month,
        exp_year=card.exp_year, funding=card.funding, country=card.country, created=created)
