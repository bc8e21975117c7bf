"""Reading a PaymentMethod the vault tokenised: its non-secret details only (the serving
role cannot read anything else of the vault's schema)."""

from __future__ import annotations

from typing import Any

from kassa.domain.errors import NotFound
from kassa.representations.payment_methods import payment_method
from kassa.services.context import Kassa
from kassa.vault import store


async def retrieve(kassa: Kassa, *, merchant_id: str, payment_method_id: str
                   ) -> dict[str, Any]:
    row = await store.get_payment_method(kassa.pool, merchant_id=merchant_id,
                                         payment_method_id=payment_method_id)
    if row is None:
        raise NotFound(f"No such PaymentMethod: '{payment_method_id:.64}'", param="id")
    return payment_method(row)
