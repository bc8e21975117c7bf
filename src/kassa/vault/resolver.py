"""Resolves payment method ids to card data for the PSP call.

Today only Stripe's test payment methods (pm_card_visa …) exist; the vault's tokenised
cards will be looked up here too, so services never see where card data comes from."""

from __future__ import annotations

from kassa.psp.base import Card
from kassa.vault.test_cards import lookup_test_payment_method


class PaymentMethodResolver:
    async def resolve(self, *, merchant_id: str, payment_method: str) -> Card | None:
        return lookup_test_payment_method(payment_method)
