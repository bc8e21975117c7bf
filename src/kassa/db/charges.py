"""Named SQL for charges: the ``charges`` row written with an authorisation attempt's step 1,
and the reads that put a charge together from it, its attempt, its balance transaction and
its disputes (migration stripe-charges_charges)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from kassa.db.pagination import fetch_page
from kassa.db.pool import Conn
from kassa.db.rows import PI_COLUMNS, payment_from_row
from kassa.domain.charges import CardFacts, ChargeDetails
from kassa.domain.lists import Bounds
from kassa.domain.money import Money
from kassa.domain.payments import AttemptStatus, PaymentIntent


@dataclass(frozen=True, slots=True)
class ChargeRow:
    """A charge as stored: its fixed facts and the state of its attempt."""

    details: ChargeDetails
    status: AttemptStatus
    error: dict[str, Any] | None
    amount: Money
    balance_transaction: str | None
    disputed: bool


# the charge's balance transaction is the capture's (type charge, sourced by the charge id)
_SELECT = (
    "SELECT c.seq, c.id, c.merchant_id, c.payment_intent_id, c.payment_method, c.card,"
    " c.billing_details, c.receipt_token, c.created, a.status, a.error, a.amount, a.currency,"
    " (SELECT b.id FROM balance_transactions b WHERE b.source = c.id AND b.type = 'charge'"
    "   AND b.merchant_id = c.merchant_id ORDER BY b.seq LIMIT 1) AS balance_transaction,"
    " EXISTS (SELECT 1 FROM disputes d WHERE d.payment_intent_id = c.payment_intent_id"
    "   AND d.charge = c.id) AS disputed"
    " FROM charges c JOIN attempts a ON a.id = c.id")


def _details(r: asyncpg.Record) -> ChargeDetails:
    return ChargeDetails(
        id=r["id"], merchant_id=r["merchant_id"], payment_intent_id=r["payment_intent_id"],
        payment_method=r["payment_method"],
        card=None if r["card"] is None else CardFacts.from_json(r["card"]),
        receipt_token=r["receipt_token"], created=r["created"],
        billing_details=r["billing_details"])


def _row(r: asyncpg.Record) -> ChargeRow:
    return ChargeRow(_details(r), AttemptStatus(r["status"]), r["error"],
                     Money(r["amount"], r["currency"]), r["balance_transaction"],
                     r["disputed"])


async def get_charge(conn: Conn, *, merchant_id: str | None, charge_id: str
                     ) -> ChargeRow | None:
    """``merchant_id`` None: for kassa's own use (events written by workers, receipts)."""
    if merchant_id is None:
        r = await conn.fetchrow(f"{_SELECT} WHERE c.id = $1", charge_id)
    else:
        r = await conn.fetchrow(f"{_SELECT} WHERE c.id = $1 AND c.merchant_id = $2",
                                charge_id, merchant_id)
    return None if r is None else _row(r)


async def get_details(conn: Conn, charge_id: str) -> ChargeDetails | None:
    """The charges row alone (a finisher's read: the attempt and payment it has in hand)."""
    r = await conn.fetchrow(
        "SELECT id, merchant_id, payment_intent_id, payment_method, card, billing_details,"
        " receipt_token, created FROM charges WHERE id = $1", charge_id)
    return None if r is None else _details(r)


async def list_charges(conn: Conn, *, merchant_id: str, limit: int, starting_after: str | None,
                       ending_before: str | None, payment_intent: str | None = None,
                       created: Bounds | None = None) -> tuple[list[ChargeRow], bool]:
    """Newest first, paged by charge id like Stripe's lists; (rows, has_more)."""
    rows, more = await fetch_page(
        conn, select=_SELECT, table="charges", alias="c", merchant_id=merchant_id, limit=limit,
        starting_after=starting_after, ending_before=ending_before,
        filters=[] if payment_intent is None else [("c.payment_intent_id = {}", payment_intent)],
        bounds=[("c.created", created)])
    return [_row(r) for r in rows], more


async def payments_by_id(conn: Conn, *, merchant_id: str, payment_ids: list[str]
                         ) -> dict[str, PaymentIntent]:
    rows = await conn.fetch(
        f"SELECT {PI_COLUMNS} FROM payment_intents WHERE id = ANY($1::text[])"
        " AND merchant_id = $2", payment_ids, merchant_id)
    return {r["id"]: payment_from_row(r) for r in rows}
