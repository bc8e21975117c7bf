"""Named SQL for refunds (the writes are ops of db/ops.py)."""

from __future__ import annotations

from kassa.db.pagination import Filter, fetch_page
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
    filters: list[Filter] = []
    if payment_intent:
        filters.append(("payment_intent_id = {}", payment_intent))
    if charge:  # a refund is of the payment's succeeded charge, its latest
        filters.append(("payment_intent_id = (SELECT id FROM payment_intents"
                        " WHERE latest_charge = {} AND merchant_id = $1)", charge))
    rows, more = await fetch_page(
        conn, select=f"SELECT {REFUND_COLUMNS} FROM refunds", table="refunds",
        merchant_id=merchant_id, limit=limit, starting_after=starting_after,
        ending_before=ending_before, filters=filters, bounds=[("created", created)])
    return [refund_from_row(r) for r in rows], more
