"""Resolves payment method ids to card data for the PSP call, without the card number.

Stripe's test payment methods (``pm_card_visa`` …) resolve to the simulator's test cards.
A card the vault tokenised resolves to its non-secret details (read from the vault's one
table the serving role may read) with placeholders for its number and CVC, which only the
vault's forwarding endpoint fills in (transport.py, forward.py)."""

from __future__ import annotations

from typing import Any, NamedTuple

import asyncpg

from kassa.psp.base import Card
from kassa.vault import placeholders, psp_tokens, store
from kassa.vault.test_cards import lookup_test_payment_method


class Resolved(NamedTuple):
    """A payment method as one read found it: the card for the PSP call (None: no such
    payment method) and, for a card the vault tokenised, its non-secret row (what the
    intent's checks and the charge's card facts read, so a payment reads it once)."""

    card: Card | None
    row: dict[str, Any] | None = None
    # the customer the same read found live (not deleted) for this merchant, so the
    # intent's checks need not read it again (None: not asked, unknown or deleted)
    live_customer: str | None = None


class PaymentMethodResolver:
    def __init__(self, pool: asyncpg.Pool | None = None) -> None:
        self.pool = pool

    async def resolve(self, *, merchant_id: str, payment_method: str) -> Card | None:
        return (await self.lookup(merchant_id=merchant_id, payment_method=payment_method)).card

    async def lookup(self, *, merchant_id: str, payment_method: str,
                     customer: str | None = None) -> Resolved:
        """``customer``: the intent's, read in the same statement as the card (one round
        trip, one transaction for a saved card's payment)."""
        card = lookup_test_payment_method(payment_method) or psp_tokens.card_of(payment_method)
        if card is not None or self.pool is None \
                or not placeholders.PAYMENT_METHOD_ID.match(payment_method):
            return Resolved(card)
        if customer is None:
            row = await store.get_payment_method(self.pool, merchant_id=merchant_id,
                                                 payment_method_id=payment_method)
            live = None
        else:
            row, live = await store.get_payment_method_and_customer(
                self.pool, merchant_id=merchant_id, payment_method_id=payment_method,
                customer_id=customer)
        if row is None:
            return Resolved(None)
        return Resolved(card_of(payment_method, row), row, customer if live else None)


def card_of(payment_method: str, row: dict[str, Any]) -> Card:
    """The vault's card as the PSP call carries it: placeholders for what only the vault's
    forwarding endpoint may fill in."""
    cvc = None
    if row["checks"].get("cvc_check") is not None:  # given: the vault may still hold it
        cvc = placeholders.placeholder(payment_method, "cvc")
    return Card(number=placeholders.placeholder(payment_method, "number"),
                exp_month=row["exp_month"], exp_year=row["exp_year"], brand=row["brand"],
                cvc=cvc)
