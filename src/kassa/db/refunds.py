"""Named SQL for refunds (the writes are ops of db/ops.py)."""

from __future__ import annotations

from kassa.db.pagination import list_objects
from kassa.db.pool import Conn
from kassa.db.rows import REFUND_COLUMNS, refund_from_row
from kassa.domain.lists import Bounds
from kassa.domain.payments import Refund


async def get_refund(conn: Conn, *, merchant_id: str | None, refund_id: str) -> Refund | None:
    if merchant_id is None:
        row = await conn.fetchrow(f"SELECT {REFUND_COLUMNS} FROM refunds WHERE id = $1",
                                  refund_id)
    else:
        row = await conn.fetchrow(
            f"SELECT {REFUND_COLUMNS} FROM refunds WHERE id = $1 AND merchant_id = $2",
            refund_id, merchant_id)
    return None if row is None else refund_from_row(row)


async def list_refunds(conn: Conn, *, merchant_id: str, limit: int, starting_after: str | None,
                       ending_before: str | None, payment_intent: str | None,
                       charge: str | None = None, created: Bounds | None = None
                       ) -> tuple[list[Refund], bool]:
    conditions, args = [], []
    if payment_intent:
        args.append(payment_intent)
        conditions.append(f"payment_intent_id = ${len(args) + 2}")
    if charge:  # a refund is of the payment's succeeded charge, its latest
        args.append(charge)
        conditions.append("payment_intent_id = (SELECT id FROM payment_intents"
                          f" WHERE latest_charge = ${len(args) + 2} AND merchant_id = $1)")
    rows, more = await list_objects(
        conn, table="refunds", columns=REFUND_COLUMNS, merchant_id=merchant_id, limit=limit,
        starting_after=starting_after, ending_before=ending_before,
        where=" AND ".join(conditions), args=tuple(args), created=created)
    return [refund_from_row(r) for r in rows], more
