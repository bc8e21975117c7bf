"""The simulator's own stored cards (PSP tokens): what a merchant charges as
``<simulator account>:<token>`` without kassa ever holding the card.

- ``tok_<name>`` for each of Stripe's test payment methods (``tok_visa``,
  ``tok_chargeDeclined``, ``tok_authenticationRequired`` …: ``pm_card_<name>``'s card), so
  a token behaves like the test card it is named after, with nothing to create first;
- ``simtok_…`` created by ``POST /_sim/tokens`` for any card (optionally for one
  ``shopper_reference``, which Adyen's dialect then requires with it), kept in the
  simulator's SQLite state like its books: a PSP does not forget a stored card when it
  restarts, and recovery repeats a charge on it after a crash.

Like any PSP's vault, the simulator keeps the number behind its tokens; it never returns it.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field
from typing import Any

from kassa.psp.simulator.books import InvalidRequest
from kassa.psp.simulator.cards import brand_of
from kassa.psp.simulator.store import SqliteStore
from kassa.vault.test_cards import TEST_PAYMENT_METHODS

PREFIX = "simtok_"
TEST_PREFIX = "tok_"


@dataclass(frozen=True, slots=True)
class StoredCard:
    id: str
    number: str
    exp_month: int
    exp_year: int
    shopper_reference: str | None = None

    def view(self) -> dict[str, Any]:
        """What the control plane answers: never the number."""
        return {"id": self.id, "object": "token", "brand": brand_of(self.number),
                "last4": self.number[-4:], "exp_month": self.exp_month,
                "exp_year": self.exp_year, "shopper_reference": self.shopper_reference}


def _test_tokens() -> dict[str, StoredCard]:
    out: dict[str, StoredCard] = {}
    for pm_id, card in TEST_PAYMENT_METHODS.items():
        token = TEST_PREFIX + pm_id.removeprefix("pm_card_")
        out[token] = StoredCard(token, card.number, card.exp_month, card.exp_year)
    return out


TEST_TOKENS = _test_tokens()


@dataclass(slots=True)
class TokenBook:
    store: SqliteStore | None = None
    created: dict[str, StoredCard] = field(default_factory=dict)

    @classmethod
    def open(cls, store: SqliteStore | None) -> TokenBook:
        book = cls(store=store)
        if store is not None:
            for body in store.load_tokens():
                book.created[body["id"]] = StoredCard(**body)
        return book

    def get(self, token: str) -> StoredCard | None:
        return TEST_TOKENS.get(token) or self.created.get(token)

    def create(self, *, number: str, exp_month: int, exp_year: int,
               shopper_reference: str | None = None) -> StoredCard:
        if not number.isdigit() or not 12 <= len(number) <= 19:
            raise InvalidRequest("number must be 12 to 19 digits", "number")
        card = StoredCard(f"{PREFIX}{secrets.token_hex(12)}", number, exp_month, exp_year,
                          shopper_reference)
        if self.store is not None:  # kept before it is answered, like the books
            self.store.save_token(card.id, asdict(card))
        self.created[card.id] = card
        return card

    def charge(self, token: str, *, param: str = "token") -> StoredCard:
        """The card behind ``token``; unknown: refused (400), nothing charged."""
        card = self.get(token)
        if card is None:
            raise InvalidRequest(f"No such token: {token[:100]!r}", param)
        return card

    def reset(self) -> None:
        self.created.clear()  # the store's rows go with the books' (SqliteStore.clear)
