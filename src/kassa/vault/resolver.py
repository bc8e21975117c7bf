"""Resolves payment method ids to card data for the PSP call, without the card number.

Stripe's test payment methods (``pm_card_visa`` …) resolve to the simulator's test cards.
A card the vault tokenised resolves to its non-secret details (read from the vault's one
table the serving role may read) with placeholders for its number and CVC, which only the
vault's forwarding endpoint fills in (transport.py, forward.py).

A card saved to a customer is read once per API process and then kept (SavedCards): its
next payments send no read before their first commit, whose claim (db/sql/apply.sql
use_payment_method) proves the row is still the one kept — same row version (xmin: any
update, an expiry changed, a detach, changes it), still that customer's, the customer not
deleted — or refuses the unit (KS4PC, units.CardChanged), and the confirmation reads the
card again and starts over (services/confirm.py). So a kept row is never charged stale."""

from __future__ import annotations

from collections import OrderedDict
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
    # set when ``row`` was kept from an earlier read (SavedCards): the row version the
    # confirmation's claim must find unchanged, with the customer, before anything is sent
    kept_version: str | None = None


# what a payment reads of a kept row (card_of, the intent's checks in saved_cards, the
# charge's facts in charges.card_facts): not its billing details nor metadata, which may
# be tens of kB a card (50 keys of 500 characters) and would let 10 000 kept cards take
# hundreds of MB of an API process
KEPT_COLUMNS = ("id", "brand", "last4", "exp_month", "exp_year", "funding", "country",
                "checks", "customer", "detached", "used_by")


class SavedCards:
    """Rows of cards saved to a customer, as last read, by (merchant, payment method), with
    their row version; bounded (least recently used out; of each row only KEPT_COLUMNS).
    Only ever a hint: every payment charged from a kept row has its claim check the row in
    the database (module docstring).
    """

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._rows: OrderedDict[tuple[str, str], tuple[dict[str, Any], str]] = OrderedDict()

    def get(self, merchant_id: str, payment_method: str, customer: str
            ) -> tuple[dict[str, Any], str] | None:
        kept = self._rows.get((merchant_id, payment_method))
        if kept is None or kept[0]["customer"] != customer:
            return None
        self._rows.move_to_end((merchant_id, payment_method))
        return kept

    def keep(self, merchant_id: str, row: dict[str, Any], version: str) -> None:
        self._rows[(merchant_id, row["id"])] = ({k: row[k] for k in KEPT_COLUMNS}, version)
        self._rows.move_to_end((merchant_id, row["id"]))
        while len(self._rows) > self.size:
            self._rows.popitem(last=False)

    def forget(self, merchant_id: str, payment_method: str) -> None:
        self._rows.pop((merchant_id, payment_method), None)


class PaymentMethodResolver:
    def __init__(self, pool: asyncpg.Pool | None = None, *, saved_cards: int = 10_000
                 ) -> None:
        self.pool = pool
        self.saved = SavedCards(saved_cards)

    async def resolve(self, *, merchant_id: str, payment_method: str) -> Card | None:
        return (await self.lookup(merchant_id=merchant_id, payment_method=payment_method)).card

    async def lookup(self, *, merchant_id: str, payment_method: str,
                     customer: str | None = None, kept: bool = False) -> Resolved:
        """``customer``: the intent's, read in the same statement as the card (one round
        trip, one transaction for a saved card's payment). ``kept``: a card saved to that
        customer may come from SavedCards, unread (the caller's first commit must then
        claim it with ``kept_version``: saved_cards.use_op)."""
        card = lookup_test_payment_method(payment_method) or psp_tokens.card_of(payment_method)
        if card is not None or self.pool is None \
                or not placeholders.PAYMENT_METHOD_ID.match(payment_method):
            return Resolved(card)
        if customer is None:
            row = await store.get_payment_method(self.pool, merchant_id=merchant_id,
                                                 payment_method_id=payment_method)
            live = False
        else:
            held = self.saved.get(merchant_id, payment_method, customer) if kept else None
            if held is not None:
                return Resolved(card_of(payment_method, held[0]), held[0], customer, held[1])
            row, live, version = await store.get_payment_method_and_customer(
                self.pool, merchant_id=merchant_id, payment_method_id=payment_method,
                customer_id=customer)
            if row is not None and live and row["customer"] == customer \
                    and not row["detached"]:
                self.saved.keep(merchant_id, row, version)
            else:
                self.saved.forget(merchant_id, payment_method)
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
