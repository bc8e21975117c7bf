"""Named SQL for customers (``customers``) and the cards saved to them (the ``customer``
column of the vault's non-secret ``kassa_vault.payment_methods``, which the serving role may
update; the card number is in another table it cannot read)."""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg

from kassa.db.filters import bounds_sql
from kassa.domain.lists import Bounds
from kassa.vault.store import PM_COLUMNS
from kassa.vault.store import _row as _pm_row

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool

CUSTOMER_COLUMNS = ("id, merchant_id, email, name, phone, description, metadata,"
                    " default_payment_method, deleted, livemode, created")
# what a merchant may change on a customer (the columns, never the caller's names)
UPDATABLE = ("email", "name", "phone", "description", "metadata", "default_payment_method")


def customer_row(record: asyncpg.Record | None) -> dict[str, Any] | None:
    if record is None:
        return None
    return dict(record)  # metadata: a dict already (the pool's jsonb codec)


async def insert_customer(conn: Conn, *, row: dict[str, Any]) -> dict[str, Any]:
    record = await conn.fetchrow(
        "INSERT INTO customers (id, merchant_id, email, name, phone, description, metadata,"
        " default_payment_method, created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        f" RETURNING {CUSTOMER_COLUMNS}", row["id"], row["merchant_id"], row["email"],
        row["name"], row["phone"], row["description"], row["metadata"],
        row["default_payment_method"], row["created"])
    result = customer_row(record)
    assert result is not None
    return result


async def get_customer(conn: Conn, *, merchant_id: str, customer_id: str,
                       for_update: bool = False) -> dict[str, Any] | None:
    """The customer, deleted or not (a deleted one answers ``deleted: true``)."""
    return customer_row(await conn.fetchrow(
        f"SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = $1 AND merchant_id = $2"
        + (" FOR NO KEY UPDATE" if for_update else ""), customer_id, merchant_id))


async def update_customer(conn: Conn, *, merchant_id: str, customer_id: str,
                          values: dict[str, Any]) -> dict[str, Any] | None:
    """Set the given columns of a customer that is not deleted."""
    names = [name for name in UPDATABLE if name in values]
    args: list[Any] = [customer_id, merchant_id]
    sets = []
    for name in names:
        value = values[name]
        args.append(value)
        sets.append(f"{name} = ${len(args)}")
    if not sets:
        return await get_customer(conn, merchant_id=merchant_id, customer_id=customer_id)
    return customer_row(await conn.fetchrow(
        f"UPDATE customers SET {', '.join(sets)} WHERE id = $1 AND merchant_id = $2"
        f" AND NOT deleted RETURNING {CUSTOMER_COLUMNS}", *args))


async def delete_customer(conn: Conn, *, merchant_id: str, customer_id: str) -> bool:
    """Mark it deleted; its saved cards are detached (as Stripe does) in the same
    transaction, so none stays reusable off-session for a customer that is gone."""
    deleted = await conn.fetchval(
        "UPDATE customers SET deleted = true, default_payment_method = NULL"
        " WHERE id = $1 AND merchant_id = $2 AND NOT deleted RETURNING true",
        customer_id, merchant_id)
    if deleted:
        await conn.execute(
            "UPDATE kassa_vault.payment_methods SET customer = NULL, detached = true"
            " WHERE merchant_id = $1 AND customer = $2", merchant_id, customer_id)
    return bool(deleted)


async def list_customers(conn: Conn, *, merchant_id: str, limit: int,
                         starting_after: str | None, ending_before: str | None,
                         created: Bounds | None = None, email: str | None = None
                         ) -> tuple[list[dict[str, Any]], bool]:
    """Newest first, cursor-paginated by id like Stripe (deleted customers are not listed);
    returns (rows, has_more)."""
    params: list[Any] = [merchant_id, limit + 1]
    cond = "merchant_id = $1 AND NOT deleted"
    if email is not None:
        params.append(email)
        cond += f" AND email = ${len(params)}"
    cond += bounds_sql("created", created, params)
    order = "DESC"
    if starting_after is not None:
        params.append(starting_after)
        cond += (f" AND seq < (SELECT seq FROM customers WHERE id = ${len(params)}"
                 " AND merchant_id = $1)")
    elif ending_before is not None:
        params.append(ending_before)
        cond += (f" AND seq > (SELECT seq FROM customers WHERE id = ${len(params)}"
                 " AND merchant_id = $1)")
        order = "ASC"
    rows = await conn.fetch(
        f"SELECT {CUSTOMER_COLUMNS} FROM customers WHERE {cond} ORDER BY seq {order} LIMIT $2",
        *params)
    has_more = len(rows) > limit
    out = [r for r in (customer_row(row) for row in rows[:limit]) if r is not None]
    if order == "ASC":
        out.reverse()
    return out, has_more


# ---------------------------------------------------------------- saved cards


async def get_payment_method_for_update(conn: asyncpg.Connection, *, merchant_id: str,
                                        payment_method_id: str) -> dict[str, Any] | None:
    return _pm_row(await conn.fetchrow(
        f"SELECT {PM_COLUMNS} FROM kassa_vault.payment_methods"
        " WHERE id = $1 AND merchant_id = $2 FOR NO KEY UPDATE", payment_method_id,
        merchant_id))


async def set_payment_method_customer(conn: Conn, *, merchant_id: str,
                                      payment_method_id: str, customer_id: str | None
                                      ) -> dict[str, Any] | None:
    """Attach (a customer) or detach (None: the card is marked ``detached`` for good, as
    Stripe never lets a detached PaymentMethod be used again)."""
    return _pm_row(await conn.fetchrow(
        "UPDATE kassa_vault.payment_methods SET customer = $3,"
        " detached = detached OR $3::text IS NULL"
        f" WHERE id = $1 AND merchant_id = $2 RETURNING {PM_COLUMNS}",
        payment_method_id, merchant_id, customer_id))


async def update_payment_method(conn: Conn, *, merchant_id: str, payment_method_id: str,
                                billing_details: dict[str, Any], metadata: dict[str, str],
                                exp_month: int, exp_year: int) -> dict[str, Any] | None:
    return _pm_row(await conn.fetchrow(
        "UPDATE kassa_vault.payment_methods SET billing_details = $3, metadata = $4,"
        " exp_month = $5, exp_year = $6"
        f" WHERE id = $1 AND merchant_id = $2 RETURNING {PM_COLUMNS}",
        payment_method_id, merchant_id, billing_details, metadata, exp_month, exp_year))


async def clear_default_payment_method(conn: Conn, *, merchant_id: str, customer_id: str,
                                       payment_method_id: str) -> None:
    await conn.execute(
        "UPDATE customers SET default_payment_method = NULL WHERE id = $1"
        " AND merchant_id = $2 AND default_payment_method = $3", customer_id, merchant_id,
        payment_method_id)


async def list_payment_methods(conn: Conn, *, merchant_id: str, customer_id: str, limit: int,
                               starting_after: str | None, ending_before: str | None,
                               created: Bounds | None = None
                               ) -> tuple[list[dict[str, Any]], bool]:
    """A customer's cards, newest first, paged by (created, id)."""
    params: list[Any] = [merchant_id, customer_id, limit + 1]
    cond = "merchant_id = $1 AND customer = $2"
    cond += bounds_sql("created", created, params)
    order = "DESC"
    cursor = starting_after or ending_before
    if cursor is not None:
        params.append(cursor)
        sign = "<" if starting_after is not None else ">"
        cond += (f" AND (created, id) {sign} (SELECT created, id FROM kassa_vault.payment_methods"
                 f" WHERE id = ${len(params)} AND merchant_id = $1)")
        order = "DESC" if starting_after is not None else "ASC"
    rows = await conn.fetch(
        f"SELECT {PM_COLUMNS} FROM kassa_vault.payment_methods WHERE {cond}"
        f" ORDER BY created {order}, id {order} LIMIT $3", *params)
    has_more = len(rows) > limit
    out = [r for r in (_pm_row(row) for row in rows[:limit]) if r is not None]
    if order == "ASC":
        out.reverse()
    return out, has_more


async def payment_method_exists(conn: Conn, *, merchant_id: str, payment_method_id: str
                                ) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM kassa_vault.payment_methods WHERE id = $1"
        " AND merchant_id = $2)", payment_method_id, merchant_id))
