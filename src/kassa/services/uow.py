"""Unit of work: one database transaction holding a state change, its ledger postings, its
outbox events and (when the request carried one) its idempotency key's stored response."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import asyncpg

from kassa.db import repositories as repo
from kassa.domain import objects
from kassa.services.context import Kassa

Renderer = Callable[[object], tuple[int, bytes]]


@dataclass(slots=True)
class IdempotencyHandle:
    """A claimed Idempotency-Key. ``render`` (supplied by the API layer) turns a result or
    an error into the exact (status, body) the client gets, so the stored response and the
    state change commit together."""

    merchant_id: str
    key: str
    render: Renderer
    took_over: bool = False  # a previous holder died; the payment may be mid-saga
    resource_id: str | None = None  # recovery point: the object the first run created
    side_effects: bool = False  # something committed (a PSP call may be in flight)
    completed: bool = False


@dataclass(slots=True)
class UnitOfWork:
    kassa: Kassa
    idempotency: IdempotencyHandle | None = None
    conn: asyncpg.Connection = field(init=False)
    _tx: Any = field(init=False, default=None)
    _events: list[tuple[str, str, str, str, dict[str, Any], int]] = field(
        init=False, default_factory=list)
    _committed: bool = field(init=False, default=False)

    async def __aenter__(self) -> UnitOfWork:
        self.conn = await self.kassa.pool.acquire()
        try:
            self._tx = self.conn.transaction()
            await self._tx.start()
        except BaseException:
            await self.kassa.pool.release(self.conn)
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            if not self._committed:
                await self._tx.rollback()
        finally:
            await self.kassa.pool.release(self.conn)

    def emit(self, *, merchant_id: str, type: str, obj: dict[str, Any],
             previous: dict[str, Any] | None = None) -> None:
        """Queue an outbox event; it is written by commit() in the same transaction."""
        event_id = self.kassa.ids("event")
        created = self.kassa.clock()
        body = objects.event(id=event_id, type=type, created=created, obj=obj, previous=previous)
        self._events.append((event_id, merchant_id, type, obj["id"], body, created))

    async def commit(self, *, response: object = None, side_effects: bool = True,
                     resource_id: str | None = None) -> None:
        """Commit; with ``response`` the idempotency key stores it in the same transaction,
        with ``resource_id`` it records the object this request created (a recovery point)."""
        if self._events:
            await repo.insert_events(self.conn, self._events)
        handle = self.idempotency
        if handle is not None and resource_id is not None:
            await repo.set_idempotency_resource(self.conn, merchant_id=handle.merchant_id,
                                                key=handle.key, resource_id=resource_id)
            handle.resource_id = resource_id
        if handle is not None and response is not None:
            status, body = handle.render(response)
            await repo.complete_idempotency_key(self.conn, merchant_id=handle.merchant_id,
                                                key=handle.key, status=status, body=body)
        await self._tx.commit()
        self._committed = True
        if handle is not None:
            if response is not None:
                handle.completed = True
            if side_effects:
                handle.side_effects = True
