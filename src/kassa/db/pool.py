"""asyncpg connection pools with kassa's type codecs."""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg
import orjson

# what a named query runs on: a connection (inside a transaction) or the pool (one statement)
Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=lambda v: orjson.dumps(v).decode(),
                              decoder=orjson.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's default reset (UNLISTEN, RESET ALL, advisory unlock — one
    more round trip per checkout). kassa never changes session state; an open transaction
    is still rolled back by the pool before this runs."""


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 16,
                      **kwargs: Any) -> asyncpg.Pool:
    # max_queries recycles connections now and then, so query plans a session cached
    # while tables were empty (fresh deploy) do not live for ever.
    kwargs.setdefault("max_queries", 20_000)
    # No JIT: kassa's statements are short OLTP reads and writes, and a plan whose estimate
    # crosses jit_above_cost (a balance read with run-time range bounds does) spends ~1 s
    # compiling what runs in a millisecond.
    kwargs.setdefault("server_settings", {"jit": "off"})
    return await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size,
                                     init=_init_connection, reset=_keep_session, **kwargs)
