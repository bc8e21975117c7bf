"""Resolving a PSP's own token (``<psp_account>:<token>``, domain/psp_tokens.py): there is
no card kassa could read, so it resolves to one placeholder card (no number, brand
unknown) and the PSP call carries the token (AuthorizeRequest.psp_token) instead."""

from __future__ import annotations

from kassa.domain import psp_tokens
from kassa.psp.base import Card

# what kassa knows of the card behind a PSP token: nothing; adapters never read its number
TOKEN_CARD = Card(number="", exp_month=1, exp_year=9999, brand="unknown", funding="unknown",
                  country=None)


def card_of(payment_method: str) -> Card | None:
    """The placeholder card of a PSP token, None when ``payment_method`` is not one."""
    return TOKEN_CARD if psp_tokens.parse(payment_method) is not None else None


def is_token_card(card: Card | None) -> bool:
    return card is TOKEN_CARD
