"""Named SQL for merchants' PSP accounts (migration 0020): credentials only ever sealed."""

from __future__ import annotations

from typing import Any

import asyncpg

from kassa.db.pagination import fetch_page
from kassa.db.pool import Conn
from kassa.domain.lists import Bounds

# what is shown and what routes; the sealed credentials are read only by ``credentials_of``
_COLUMNS = ("id, merchant_id, psp, enabled, currencies, settings, revision, livemode,"
            " created, updated, deleted")


def _row(r: asyncpg.Record) -> dict[str, Any]:
    out = dict(r)
    out["currencies"] = list(out["currencies"])
    return out


async def insert_account(conn: Conn, *, account_id: str, merchant_id: str, psp: str,
                         enabled: bool, currencies: list[str], settings: dict[str, Any],
                         credentials: bytes, livemode: bool, created: int) -> dict[str, Any]:
    row = await conn.fetchrow(
        "INSERT INTO psp_accounts (id, merchant_id, psp, enabled, currencies, settings,"
        " credentials, livemode, created, updated)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $9)"
        f" RETURNING {_COLUMNS}",
        account_id, merchant_id, psp, enabled, currencies, settings, credentials, livemode,
        created)
    return _row(row)


async def get_account(conn: Conn, *, merchant_id: str, account_id: str,
                      for_update: bool = False) -> dict[str, Any] | None:
    """A live (not deleted) account of the merchant."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM psp_accounts WHERE id = $1 AND merchant_id = $2"
        " AND deleted IS NULL" + (" FOR UPDATE" if for_update else ""),
        account_id, merchant_id)
    return None if row is None else _row(row)


async def credentials_of(conn: Conn, account_id: str) -> tuple[dict[str, Any], bytes] | None:
    """An account (deleted ones too: their payments' captures and refunds still go there)
    and its sealed credentials, for building its adapter."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS}, credentials FROM psp_accounts WHERE id = $1", account_id)
    if row is None:
        return None
    out = _row(row)
    return out, bytes(out.pop("credentials"))


async def update_account(conn: Conn, *, merchant_id: str, account_id: str, now: int,
                         enabled: bool | None = None, currencies: list[str] | None = None,
                         settings: dict[str, Any] | None = None,
                         credentials: bytes | None = None) -> dict[str, Any] | None:
    """Change what is given (None: keep), one revision more. None: no such live account."""
    row = await conn.fetchrow(
        "UPDATE psp_accounts SET enabled = coalesce($3, enabled),"
        " currencies = coalesce($4, currencies), settings = coalesce($5::jsonb, settings),"
        " credentials = coalesce($6, credentials), revision = revision + 1, updated = $7"
        " WHERE id = $1 AND merchant_id = $2 AND deleted IS NULL"
        f" RETURNING {_COLUMNS}",
        account_id, merchant_id, enabled, currencies, settings, credentials, now)
    return None if row is None else _row(row)


async def mark_deleted(conn: Conn, *, merchant_id: str, account_id: str,
                       now: int) -> bool:
    """No new payment goes there; its payments' follow-ups still do."""
    done = await conn.fetchval(
        "UPDATE psp_accounts SET deleted = $3, enabled = false, revision = revision + 1,"
        " updated = $3 WHERE id = $1 AND merchant_id = $2 AND deleted IS NULL"
        " RETURNING true", account_id, merchant_id, now)
    return bool(done)


async def lock_merchant(conn: Conn, merchant_id: str) -> None:
    """Orders a deletion against an activation of a routing configuration naming it."""
    await conn.execute("SELECT 1 FROM merchants WHERE id = $1 FOR UPDATE", merchant_id)


async def routable(conn: Conn) -> list[dict[str, Any]]:
    """Every live account's routing facts (the registry's per-process snapshot)."""
    rows = await conn.fetch(
        "SELECT id, merchant_id, psp, enabled, currencies, revision FROM psp_accounts"
        " WHERE deleted IS NULL")
    return [_row(r) for r in rows]


async def hold_validity_of(conn: Conn, account_id: str) -> tuple[str, int | None] | None:
    """(the account's PSP, its ``hold_validity_days`` setting or None)."""
    row = await conn.fetchrow(
        "SELECT psp, (settings->>'hold_validity_days')::int AS days FROM psp_accounts"
        " WHERE id = $1", account_id)
    return None if row is None else (row["psp"], row["days"])


async def revision_of(conn: Conn, account_id: str) -> int | None:
    value = await conn.fetchval("SELECT revision FROM psp_accounts WHERE id = $1", account_id)
    return None if value is None else int(value)


async def list_accounts(conn: Conn, *, merchant_id: str, limit: int,
                        starting_after: str | None, ending_before: str | None,
                        created: Bounds | None = None) -> tuple[list[dict[str, Any]], bool]:
    """Newest first, cursor-paginated by id like Stripe; deleted accounts are not listed."""
    rows, more = await fetch_page(conn, select=f"SELECT {_COLUMNS} FROM psp_accounts",
                                  table="psp_accounts", merchant_id=merchant_id,
                                  limit=limit, starting_after=starting_after,
                                  ending_before=ending_before,
                                  filters=[("(deleted IS NULL) = {}", True)],
                                  bounds=[("created", created)])
    return [_row(r) for r in rows], more
