"""Named SQL for what the API reads of reconciliation runs and their discrepancies, and a
person's resolution of one (the import's own SQL is db/reconciliation.py)."""

from __future__ import annotations

from typing import Any

import asyncpg

from kassa.db.pool import Conn
from kassa.db.reconciliation import RUN_COLUMNS

DISCREPANCY_COLUMNS = ("id, run_id, row_number, kind, category, merchant_id, psp_reference,"
                       " kassa_object, currency, kassa_amount, psp_amount, kassa_value,"
                       " psp_value, resolution, resolution_how, resolved_by, resolved_at,"
                       " created")


async def list_runs(conn: Conn, *, limit: int, starting_after: str | None,
                    ending_before: str | None) -> tuple[list[asyncpg.Record], bool]:
    cursor, descending = starting_after or ending_before, ending_before is None
    params: list[Any] = [limit + 1]
    where = ""
    if cursor is not None:
        params.append(cursor)
        where = (f" WHERE seq {'<' if descending else '>'} (SELECT seq FROM"
                 " reconciliation_runs WHERE id = $2)")
    rows = await conn.fetch(f"SELECT {RUN_COLUMNS} FROM reconciliation_runs{where}"
                            f" ORDER BY seq {'DESC' if descending else 'ASC'} LIMIT $1",
                            *params)
    page = rows[:limit]
    return (page if descending else page[::-1]), len(rows) > limit


async def list_discrepancies(conn: Conn, *, run_id: str, limit: int,
                             starting_after: str | None, kind: str | None = None,
                             resolution: str | None = None
                             ) -> tuple[list[asyncpg.Record], bool]:
    params: list[Any] = [run_id, limit + 1]
    where = "run_id = $1"
    for column, value in (("kind", kind), ("resolution", resolution)):
        if value is not None:
            params.append(value)
            where += f" AND {column} = ${len(params)}"
    if starting_after is not None:
        params.append(starting_after)
        where += (f" AND seq > (SELECT seq FROM reconciliation_discrepancies"
                  f" WHERE id = ${len(params)})")
    rows = await conn.fetch(f"SELECT {DISCREPANCY_COLUMNS} FROM reconciliation_discrepancies"
                            f" WHERE {where} ORDER BY seq LIMIT $2", *params)
    return rows[:limit], len(rows) > limit


async def resolve_discrepancy(conn: Conn, *, discrepancy_id: str, resolved_by: str,
                              how: str, at: int) -> asyncpg.Record | None:
    """An open discrepancy resolved by a person, who says why; None if there is no open one
    with this id."""
    return await conn.fetchrow(
        "UPDATE reconciliation_discrepancies SET resolution = 'resolved', resolved_by = $2,"
        " resolution_how = $3, resolved_at = $4 WHERE id = $1 AND resolution = 'open'"
        f" RETURNING {DISCREPANCY_COLUMNS}", discrepancy_id, resolved_by, how, at)


async def get_discrepancy(conn: Conn, discrepancy_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {DISCREPANCY_COLUMNS} FROM reconciliation_discrepancies"
                               " WHERE id = $1", discrepancy_id)
