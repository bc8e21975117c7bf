"""Apply a unit of work's writes (the ops of db/ops.py) in one round trip through
``kassa_apply`` (db/sql/apply.sql), alone or batched, and map its refusals to exceptions."""

from __future__ import annotations

from typing import Any

import asyncpg

from kassa.db import ops
from kassa.db.ops import Op
from kassa.db.pool import Conn
from kassa.domain.errors import ConcurrentModification, InvalidRequest

KS409 = "KS409"  # kassa_apply: a compare-and-swap found the row moved
KS4PM = "KS4PM"  # kassa_apply: a single-use card was used by another payment intent
KS4PC = "KS4PC"  # kassa_apply: a kept saved card's row changed since the API read it


class CardChanged(Exception):
    """A unit of work claimed a saved card as the API process kept it (vault/resolver.py
    SavedCards), and the row is no longer that one: nothing of the unit was written; read
    the card again."""


class IdempotencyKeyTaken(Exception):
    """A unit of work tried to claim an Idempotency-Key that already exists."""


async def apply(conn: Conn, unit: list[Op]) -> None:
    """Apply a unit of work's writes in one round trip (kassa_apply, db/sql/apply.sql): inside
    the connection's open transaction, or as one implicit transaction of its own."""
    if not unit:
        return
    try:
        await conn.execute("SELECT kassa_apply($1::jsonb)", ops.wire(unit))
    except asyncpg.PostgresError as exc:
        mapped = unit_error(getattr(exc, "sqlstate", None),
                            getattr(exc, "constraint_name", None),
                            exc.args[0] if exc.args else "")
        if mapped is None:
            raise
        raise mapped from None


def unit_error(sqlstate: str | None, constraint: str | None, message: str
               ) -> Exception | None:
    """The exception a unit of work's refusal maps to, or None for a real failure."""
    if sqlstate == "23505" and constraint == "idempotency_keys_pkey":
        return IdempotencyKeyTaken()
    if sqlstate == KS409:
        return ConcurrentModification(f"{message or 'object'}; retry the request.")
    if sqlstate == KS4PC:
        return CardChanged(message)
    if sqlstate == KS4PM:
        return InvalidRequest(message, param="payment_method",
                              code="payment_method_unexpected_state")
    return None


async def apply_batch(conn: Conn, units: list[list[Op]]) -> list[dict[str, Any] | None]:
    """Several units of work in one transaction (kassa_apply_batch, migration 0006), each in
    its own subtransaction: per unit None (applied) or {sqlstate, constraint, message}."""
    result: list[dict[str, Any] | None] = await conn.fetchval(
        "SELECT kassa_apply_batch($1::jsonb)", [ops.wire(u) for u in units])
    return result
