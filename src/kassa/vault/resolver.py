"""Resolves payment method ids to card data for the PSP call, without the card number.

Stripe's test payment methods (``pm_card_visa`` …) resolve to the simulator's test cards.
A card the vault tokenised resolves to its non-secret details (read from the vault's one
table the serving role may read) with placeholders for its number and CVC, which only the
vault's forwarding endpoint fills in (transport.py, forward.py)."""

from __future__ import annotations

import asyncpg

from kassa.psp.base import Card
from kassa.vault import placeholders, store
from kassa.vault.test_cards import lookup_test_payment_method


class PaymentMethodResolver:
    def __init__(self, pool: asyncpg.Pool | None = None) -> None:
        self.pool = pool

    async def resolve(self, *, merchant_id: str, payment_method: str) -> Card | None:
        card = lookup_test_payment_method(payment_method)
        if card is not None or self.pool is None \
                or not placeholders.PAYMENT_METHOD_ID.match(payment_method):
            return card
        row = await store.get_payment_method(self.pool, merchant_id=merchant_id,
                                             payment_method_id=payment_method)
        if row is None:
            return None
        cvc = None
        if row["checks"].get("cvc_check") is not None:  # given: the vault may still hold it
            cvc = placeholders.placeholder(payment_method, "cvc")
        return Card(number=placeholders.placeholder(payment_method, "number"),
                    exp_month=row["exp_month"], exp_year=row["exp_year"], brand=row["brand"],
                    cvc=cvc)
