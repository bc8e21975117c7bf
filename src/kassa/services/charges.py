"""Charges: recording what an authorisation attempt showed of the card (with the attempt's
step 1), and putting the charge object together for /v1/charges, expansions, receipts and
``charge.*`` events.

A finisher renders the charge of the state it is about to commit (``event_object``): the
attempt, payment and refund it holds in memory override what the database still shows.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass
from typing import Any

from kassa import representations
from kassa.db import charges as charges_db
from kassa.db import merchants as merchants_db
from kassa.db import payments as payments_db
from kassa.db import refunds as refunds_db
from kassa.domain import ids
from kassa.domain.charges import CardFacts, ChargeDetails, status_of
from kassa.domain.errors import InvalidRequest, NotFound
from kassa.domain.lists import Bounds
from kassa.domain.payments import Attempt, AttemptStatus, PaymentIntent, PaymentStatus, Refund
from kassa.services.context import Kassa
from kassa.vault import psp_tokens
from kassa.vault.resolver import Resolved

REFUNDS_SHOWN = 10  # refunds inlined in a charge's `refunds` list; the rest are paged


def card_facts(resolved: Resolved) -> CardFacts | None:
    """What the charge shows of the card: a card the vault tokenised resolves with
    placeholders for its number, so its facts come from the vault's non-secret row (read
    with it, vault/resolver.py)."""
    card, row = resolved.card, resolved.row
    if card is None or psp_tokens.is_token_card(card):  # a PSP's token: kassa saw no card
        return None
    if row is not None:
        return CardFacts(brand=row["brand"], last4=row["last4"], exp_month=row["exp_month"],
                         exp_year=row["exp_year"], funding=row["funding"],
                         country=row["country"])
    return CardFacts(brand=card.brand, last4=card.number[-4:], exp_month=card.exp_month,
                     exp_year=card.exp_year, funding=card.funding, country=card.country)


def details_for(kassa: Kassa, attempt: Attempt, p: PaymentIntent, facts: CardFacts | None
                ) -> ChargeDetails:
    """The charge's fixed facts, taken before step 1 commits (the card as resolved now)."""
    return ChargeDetails(
        id=attempt.id, merchant_id=p.merchant_id, payment_intent_id=p.id,
        payment_method=p.payment_method, card=facts,
        # the receipt page's credential: 144 random bits, unrelated to any id
        receipt_token=ids.encode("rcpt", os.urandom(18)), created=kassa.clock())


def receipt_url(kassa: Kassa, d: ChargeDetails) -> str | None:
    if not d.receipt_token:
        return None
    return f"{kassa.public_url.rstrip('/')}/receipts/{d.id}/{d.receipt_token}"


def _unrecorded(charge_id: str, p: PaymentIntent, created: int) -> ChargeDetails:
    """An attempt with no charges row: nothing is known of its card, it has no receipt."""
    return ChargeDetails(id=charge_id, merchant_id=p.merchant_id, payment_intent_id=p.id,
                         payment_method=p.payment_method, card=None, receipt_token="",
                         created=created or p.created)


@dataclass(frozen=True, slots=True)
class _Unset:
    pass


UNSET = _Unset()


async def _refund_list(kassa: Kassa, d: ChargeDetails, p: PaymentIntent,
                       refund: Refund | None) -> dict[str, Any]:
    url = f"/v1/charges/{d.id}/refunds"
    items: list[Refund] = []
    more = False
    if p.status is PaymentStatus.SUCCEEDED and p.latest_charge == d.id:
        items, more = await refunds_db.list_refunds(
            kassa.pool, merchant_id=p.merchant_id, limit=REFUNDS_SHOWN, starting_after=None,
            ending_before=None, payment_intent=p.id)
    if refund is not None:  # the one being recorded: its state as it is about to commit
        items = [refund, *[r for r in items if r.id != refund.id]][:REFUNDS_SHOWN]
    data = [representations.refund(r, charge=d.id) for r in items]
    return representations.list_object(url, data, more)


async def render(kassa: Kassa, row: charges_db.ChargeRow, p: PaymentIntent, *,
                 refund: Refund | None = None) -> dict[str, Any]:
    return representations.charge(
        row.details, status=row.status, error=row.error, amount=row.amount, payment=p,
        balance_transaction=row.balance_transaction, disputed=row.disputed,
        refunds=await _refund_list(kassa, row.details, p, refund),
        receipt_url=receipt_url(kassa, row.details))


async def event_object(kassa: Kassa, *, charge_id: str, payment: PaymentIntent,
                       attempt: Attempt | None = None,
                       balance_transaction: str | None | _Unset = UNSET,
                       refund: Refund | None = None, new: bool = False) -> dict[str, Any]:
    """The charge as the unit of work being built will leave it: ``attempt`` (the
    authorisation), ``payment``, ``balance_transaction`` and ``refund`` as held in memory
    override what the database still shows. ``new``: recorded just now (no refunds or
    disputes yet, the balance transaction given), so only the charges row is read."""
    if new:
        assert attempt is not None and not isinstance(balance_transaction, _Unset)
        details = attempt.charge if isinstance(attempt.charge, ChargeDetails) else (
            await charges_db.get_details(kassa.pool, charge_id)
            or _unrecorded(charge_id, payment, attempt.created))
        return representations.charge(
            details, status=attempt.status, error=attempt.error, amount=attempt.amount,
            payment=payment, balance_transaction=balance_transaction, disputed=False,
            refunds=representations.list_object(f"/v1/charges/{charge_id}/refunds", [],
                                                False),
            receipt_url=receipt_url(kassa, details))
    stored = await charges_db.get_charge(kassa.pool, merchant_id=None, charge_id=charge_id)
    if stored is None:  # started by a release that kept no charges row (rolling deploy)
        # never raise here: a finisher renders this event in the unit of work that records
        # money the PSP already moved, and a refusal would keep that money off the ledger
        known = attempt or await payments_db.get_attempt(kassa.pool, charge_id)
        if known is not None:
            stored = charges_db.ChargeRow(_unrecorded(charge_id, payment, known.created),
                                          known.status, known.error, known.amount, None,
                                          False)
        else:
            stored = charges_db.ChargeRow(_unrecorded(charge_id, payment, payment.created),
                                          AttemptStatus.SUCCEEDED, None, payment.amount,
                                          None, False)
    row = charges_db.ChargeRow(
        stored.details,
        stored.status if attempt is None else attempt.status,
        stored.error if attempt is None else attempt.error,
        stored.amount if attempt is None else attempt.amount,
        stored.balance_transaction if isinstance(balance_transaction, _Unset)
        else balance_transaction,
        stored.disputed)
    return await render(kassa, row, payment, refund=refund)


async def retrieve(kassa: Kassa, *, merchant_id: str, charge_id: str) -> dict[str, Any]:
    row = await charges_db.get_charge(kassa.pool, merchant_id=merchant_id,
                                      charge_id=charge_id)
    if row is None:
        raise NotFound(f"No such charge: '{charge_id}'", param="id")
    p = await payments_db.get_payment(kassa.pool, merchant_id=merchant_id,
                                      payment_id=row.details.payment_intent_id)
    assert p is not None
    return await render(kassa, row, p)


async def list_(kassa: Kassa, *, merchant_id: str, limit: int, starting_after: str | None,
                ending_before: str | None, created: Bounds | None = None,
                payment_intent: str | None = None) -> tuple[list[dict[str, Any]], bool]:
    rows, more = await charges_db.list_charges(
        kassa.pool, merchant_id=merchant_id, limit=limit, starting_after=starting_after,
        ending_before=ending_before, payment_intent=payment_intent, created=created)
    payments = await charges_db.payments_by_id(
        kassa.pool, merchant_id=merchant_id,
        payment_ids=sorted({r.details.payment_intent_id for r in rows}))
    return [await render(kassa, r, payments[r.details.payment_intent_id]) for r in rows], more


async def receipt(kassa: Kassa, *, charge_id: str, token: str
                  ) -> tuple[dict[str, Any], str] | None:
    """The charge behind a receipt link and its merchant's name, or None: the token is the
    only credential (no API key), compared in constant time."""
    row = await charges_db.get_charge(kassa.pool, merchant_id=None, charge_id=charge_id)
    if row is None or not hmac.compare_digest(row.details.receipt_token.encode(),
                                              token.encode()):
        return None
    p = await payments_db.get_payment(kassa.pool, merchant_id=row.details.merchant_id,
                                      payment_id=row.details.payment_intent_id)
    merchant = await merchants_db.get_merchant(kassa.pool, row.details.merchant_id)
    assert p is not None and merchant is not None
    return await render(kassa, row, p), merchant["name"]


async def refundable_payment(kassa: Kassa, *, merchant_id: str, charge_id: str,
                             payment_intent: str | None) -> str:
    """The payment a refund of ``charge_id`` refunds: a charge carries money only as its
    payment's successful authorisation; ``payment_intent``, when also given, must be its."""
    row = await charges_db.get_charge(kassa.pool, merchant_id=merchant_id,
                                      charge_id=charge_id)
    if row is None:
        raise InvalidRequest(f"No such charge: '{charge_id}'", param="charge",
                             code="resource_missing")
    if payment_intent is not None and payment_intent != row.details.payment_intent_id:
        raise InvalidRequest(f"Charge {charge_id} belongs to PaymentIntent "
                             f"{row.details.payment_intent_id}, not {payment_intent}.",
                             param="payment_intent")
    if row.status is not AttemptStatus.SUCCEEDED:
        raise InvalidRequest(f"Charge {charge_id} has a status of "
                             f"{status_of(row.status)}; only a succeeded charge can be "
                             "refunded.", param="charge", code="charge_not_refundable")
    return row.details.payment_intent_id
