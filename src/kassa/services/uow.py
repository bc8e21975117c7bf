"""Unit of work: one database transaction holding a state change, its ledger postings, its
outbox events and (when the request carried one) its idempotency key's stored response.

Writes are collected as typed ops (db/ops.py) and applied by commit() in a single round trip
(``kassa_apply``); a unit of work that must also read-and-lock rows (a worker claiming a
batch) opens an explicit transaction with ``await uow.connection()`` first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import asyncpg

from kassa import representations, request_context
from kassa.db import ops, units
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
    fingerprint: bytes = b""
    method: str = "POST"
    path: str = ""
    request_id: str | None = None  # the req_ id of the request that claims the key
    # The key's row is inserted by the request's first commit, together with its first
    # state change (one round trip fewer than claiming it up front). Nothing a request
    # does before that commit is visible, so two racing requests still meet at the
    # unique key: the loser's whole unit of work rolls back.
    claimed: bool = False
    took_over: bool = False  # a previous holder died; the payment may be mid-saga
    resource_id: str | None = None  # recovery point: the object the first run created
    side_effects: bool = False  # something committed (a PSP call may be in flight)
    completed: bool = False


@dataclass(slots=True)
class UnitOfWork:
    kassa: Kassa
    idempotency: IdempotencyHandle | None = None
    _ops: list[ops.Op] = field(init=False, default_factory=list)
    _events: list[dict[str, Any]] = field(init=False, default_factory=list)
    _conn: asyncpg.Connection | None = field(init=False, default=None)
    _tx: Any = field(init=False, default=None)
    _committed: bool = field(init=False, default=False)

    async def __aenter__(self) -> UnitOfWork:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._conn is None:
            return
        try:
            if not self._committed:
                await self._tx.rollback()
        finally:
            await self.kassa.pool.release(self._conn)

    async def connection(self) -> asyncpg.Connection:
        """An explicit transaction for statements that must run before commit()."""
        if self._conn is None:
            conn: asyncpg.Connection = await self.kassa.pool.acquire()
            try:
                self._tx = conn.transaction()
                await self._tx.start()
            except BaseException:
                await self.kassa.pool.release(conn)
                raise
            self._conn = conn
        return self._conn

    def add(self, *queued: ops.Op) -> None:
        self._ops.extend(queued)

    def emit(self, *, merchant_id: str, type: str, obj: dict[str, Any],
             previous: dict[str, Any] | None = None) -> None:
        """Queue an outbox event; it is written by commit() in the same transaction."""
        event_id = self.kassa.ids("event")
        created = self.kassa.clock()
        body = representations.event(id=event_id, type=type, created=created, obj=obj,
                                     previous=previous,
                                     request=request_context.event_request())
        self._events.append({"id": event_id, "merchant_id": merchant_id, "type": type,
                             "object_id": obj["id"], "data": body, "created": created})

    async def commit(self, *, response: object = None, side_effects: bool = True,
                     resource_id: str | None = None) -> None:
        """Commit; with ``response`` the idempotency key stores it in the same transaction,
        with ``resource_id`` it records the object this request created (a recovery point)."""
        unit = self._ops
        handle = self.idempotency
        # a key claimed by this unit records its resource in the claim's insert (one row
        # version written instead of two)
        claims = handle is not None and not handle.claimed
        if handle is not None and claims:
            unit.insert(0, ops.ClaimIdempotency(
                merchant_id=handle.merchant_id, key=handle.key, fingerprint=handle.fingerprint,
                method=handle.method, path=handle.path, request_id=handle.request_id,
                resource_id=resource_id))
        if self._events:
            unit.append(ops.InsertEvents(self._events))
        if handle is not None and resource_id is not None and not claims:
            unit.append(ops.SetIdempotencyResource(
                merchant_id=handle.merchant_id, key=handle.key, resource_id=resource_id))
        if handle is not None and response is not None:
            status, body = handle.render(response)
            unit.append(ops.CompleteIdempotency(merchant_id=handle.merchant_id,
                                                    key=handle.key, status=status, body=body))
        if self._conn is not None:
            await units.apply(self._conn, unit)
            await self._tx.commit()
        elif self.kassa.writer is not None:
            await self.kassa.writer.apply(unit)  # may share a transaction with other requests
        else:
            await units.apply(self.kassa.pool, unit)  # one statement, one implicit transaction
        self._committed = True
        if handle is not None:
            handle.claimed = True
            if resource_id is not None:
                handle.resource_id = resource_id
            if response is not None:
                handle.completed = True
            if side_effects:
                handle.side_effects = True
