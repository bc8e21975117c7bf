"""The outbox relay: publishes every committed event, in order, to a broker, at least once.

How it reads (db/relay.py): events in (xid, seq) order, only those whose writing
transaction id is below the oldest transaction still running. Such a transaction has
finished, so its rows are visible if it committed; a long transaction that commits late is
therefore waited for, never skipped.

Order per payment: a transaction that started after another committed has the larger xid,
so causally ordered changes (the saga steps of a payment, one after the other) are
published in commit order. Two concurrent writers of one payment row do not both commit in
the wrong order either: updates compare-and-swap on the version read before the
transaction began, so the one that waited for the other's row lock fails instead of
committing behind it. Only transactions that ran concurrently without touching a common
row (two refunds of one payment settling at once) may appear in either order; neither saw
the other, so both orders are true histories.

How it survives crashes: the stored position (relay_positions) moves only after the
publisher reported the whole batch acknowledged. A relay killed between the two sends that
batch again after restart: at-least-once, and consumers deduplicate on the event id. The
re-sent events follow the originals in the same order, so the first copy of each event still
arrives in commit order.

How replicas share it: a session advisory lock per relay name; one replica publishes, the
others stand by and take over within one poll interval when its connection goes away.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg

from kassa.db import relay as relay_db
from kassa.db.relay import Position
from kassa.events.publisher import EventPublisher, OutboxEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RelayStatus:
    name: str
    position: Position
    published: int  # events sent since the relay first ran (duplicates included)
    backlog: int  # committed events after the position (not yet published)


class Relay:
    """Moves events from the outbox table to ``publisher``, one batch per ``pass_once``."""

    def __init__(self, *, pool: asyncpg.Pool, publisher: EventPublisher, name: str = "kafka",
                 batch_size: int = 500) -> None:
        self.pool = pool
        self.publisher = publisher
        self.name = name
        self.batch_size = batch_size
        self._conn: asyncpg.Connection | None = None  # holds the leader lock while we lead
        self._position: Position | None = None
        self._started = False

    @property
    def leading(self) -> bool:
        return self._conn is not None

    async def pass_once(self) -> int:
        """Publish the next batch; returns how many events went out (0: nothing to do, or
        another replica is the relay). Raises if the broker or the database failed; the
        position is then unchanged and the next pass sends the same events again."""
        conn = await self._lead()
        if conn is None:
            return 0
        try:
            assert self._position is not None
            rows = await relay_db.fetch_events(conn, after=self._position, limit=self.batch_size)
            if not rows:
                return 0
            batch = [OutboxEvent(xid=int(r["xid"]), seq=r["seq"], id=r["id"], type=r["type"],
                                 merchant_id=r["merchant_id"], key=r["key"],
                                 body=r["body"].encode()) for r in rows]
            if not self._started:
                await self.publisher.start()
                self._started = True
            await self.publisher.publish(batch)
            last = Position(batch[-1].xid, batch[-1].seq)
            if not await relay_db.save_position(conn, name=self.name, position=last,
                                                published=len(batch)):
                # Only the lock holder writes the position; if it moved, someone else did.
                await self._abdicate()
                raise RuntimeError(f"relay {self.name!r}: stored position moved under us")
            self._position = last
            return len(batch)
        except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError):
            await self._abdicate()  # the lock may be gone with the connection
            raise

    async def drain(self, *, max_passes: int = 1_000_000) -> int:
        """Publish until nothing is left that is safe to publish; returns the count."""
        total = 0
        for _ in range(max_passes):
            n = await self.pass_once()
            if n == 0:
                break
            total += n
        return total

    async def status(self) -> RelayStatus:
        stored = await relay_db.load_position(self.pool, self.name)
        return RelayStatus(name=self.name, position=stored.position, published=stored.published,
                           backlog=await relay_db.backlog(self.pool, after=stored.position))

    async def close(self) -> None:
        await self._abdicate()
        if self._started:
            self._started = False
            await self.publisher.close()

    async def _lead(self) -> asyncpg.Connection | None:
        if self._conn is not None:
            return self._conn
        conn: asyncpg.Connection = await self.pool.acquire()
        try:
            leading = await relay_db.try_lead(conn, self.name)
            if leading:
                self._position = (await relay_db.load_position(conn, self.name)).position
        except BaseException:
            conn.terminate()  # it may hold the lock: end the session rather than pool it
            await self.pool.release(conn)
            raise
        if not leading:
            await self.pool.release(conn)
            return None
        log.info("relay %r leading from %s", self.name, self._position)
        self._conn = conn
        return conn

    async def _abdicate(self) -> None:
        """Give the lock back before the connection returns to the pool (kassa's pool does
        not reset sessions on release); a connection that cannot is closed instead."""
        conn, self._conn = self._conn, None
        self._position = None
        if conn is None:
            return
        try:
            if not conn.is_closed():
                await relay_db.stop_leading(conn, self.name)
        except BaseException as exc:
            conn.terminate()  # the lock ends with the session
            if not isinstance(exc, Exception):
                raise
        finally:
            await self.pool.release(conn)
