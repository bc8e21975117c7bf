"""Named SQL for the outbox relay: who relays (an advisory lock), where it is (relay_positions)
and what comes next (events in commit-safe (xid, seq) order).

The cursor is (xid, seq): an event's transaction id (xid8, assigned by the transaction that
wrote it) and its row number. Only rows whose xid is below ``pg_snapshot_xmin`` of the
reading statement's snapshot are returned: every transaction with a smaller id has finished,
so such a row is visible now if it ever will be. A transaction that stays open for minutes
holds the horizon back (later commits wait behind it) instead of being skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from kassa.db.pool import Conn

# Advisory locks keyed (class, hashtext(name)): the two-int form lives in its own key space,
# apart from any bigint-keyed advisory lock elsewhere in kassa.
RELAY_LOCK_CLASS = 0x6B617373  # "kass"


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """A place in the event stream: everything at or before (xid, seq) has been published."""

    xid: int = 0
    seq: int = 0


@dataclass(frozen=True, slots=True)
class StoredPosition:
    position: Position
    published: int  # events sent by this relay since it first ran (duplicates included)


async def try_lead(conn: asyncpg.Connection, name: str) -> bool:
    """Take the session-level lock that makes this connection the one relay named ``name``;
    released when the connection closes (a killed relay loses it at once)."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1, hashtext($2))",
                                    RELAY_LOCK_CLASS, name))


async def stop_leading(conn: asyncpg.Connection, name: str) -> None:
    await conn.execute("SELECT pg_advisory_unlock($1, hashtext($2))", RELAY_LOCK_CLASS, name)


async def load_position(conn: Conn, name: str) -> StoredPosition:
    """The stored position of relay ``name``; a relay seen for the first time starts at the
    beginning of the stream."""
    row = await conn.fetchrow(
        "WITH created AS (INSERT INTO relay_positions (name) VALUES ($1)"
        " ON CONFLICT (name) DO NOTHING RETURNING xid, seq, published)"
        " SELECT xid::text AS xid, seq, published FROM created"
        " UNION ALL SELECT xid::text, seq, published FROM relay_positions WHERE name = $1",
        name)
    assert row is not None
    return StoredPosition(Position(int(row["xid"]), row["seq"]), row["published"])


async def fetch_events(conn: Conn, *, after: Position, limit: int) -> list[asyncpg.Record]:
    """The next ``limit`` events after ``after`` that are safe to publish, oldest first.

    ``key`` is the payment the event belongs to: the object's ``payment_intent`` (refunds,
    charges, disputes) or else the object itself (payment intents). ``body`` is the event
    JSON as stored, passed through without decoding."""
    # ORDER BY names e.xid: a bare "xid" would sort by the text output column (9 > 10).
    rows: list[asyncpg.Record] = await conn.fetch(
        "WITH horizon AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)"
        " SELECT e.xid::text AS xid, e.seq, e.id, e.type, e.merchant_id,"
        "  coalesce(e.data #>> '{data,object,payment_intent}', e.object_id) AS key,"
        "  e.data::text AS body"
        " FROM events e"
        " WHERE (e.xid, e.seq) > ($1::text::xid8, $2::bigint)"
        "  AND e.xid < (SELECT xmin FROM horizon)"
        " ORDER BY e.xid, e.seq LIMIT $3",
        str(after.xid), after.seq, limit)
    return rows


async def save_position(conn: Conn, *, name: str, position: Position, published: int) -> bool:
    """Move relay ``name`` forward to ``position`` (never backwards); call only after the
    broker acknowledged every event up to it."""
    status = await conn.execute(
        "UPDATE relay_positions SET xid = $2::text::xid8, seq = $3,"
        " published = published + $4, updated_at = now()"
        " WHERE name = $1 AND (xid, seq) < ($2::text::xid8, $3::bigint)",
        name, str(position.xid), position.seq, published)
    return bool(status == "UPDATE 1")


async def backlog(conn: Conn, *, after: Position) -> int:
    """Events written after ``after`` (committed ones, whether or not yet safe to publish)."""
    n: int = await conn.fetchval(
        "SELECT count(*) FROM events WHERE (xid, seq) > ($1::text::xid8, $2::bigint)",
        str(after.xid), after.seq)
    return n


async def list_positions(conn: Conn) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT name, xid::text AS xid, seq, published, updated_at FROM relay_positions"
        " ORDER BY name")
    return rows
