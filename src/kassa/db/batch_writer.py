"""Group commit for units of work: concurrent requests' writes share one transaction.

Each saga step writes one unit of work (a list of kassa_apply operations). On two cores
PostgreSQL spends ~1.9 ms of CPU per card payment when every unit is its own transaction
and ~1.0 ms when 16 payments' units share one (PERFORMANCE.md, migration 0006); the API
saves the round trips too. So instead of sending a unit at once, ``BatchWriter.apply``
queues it; a flush takes everything queued (up to ``max_batch`` units) and, when done,
the next lot. With nothing in flight a unit is sent immediately, so batching adds no
latency when idle and grows with load by itself. Another flush runs alongside (up to
``max_inflight``) only while a few units are waiting (SECOND_FLUSH_AT): parallel
flushes mean smaller batches and more PostgreSQL CPU per unit, a single flush means
waiting behind it.

Outcomes stay exactly those of ``units.apply``, unit by unit:
- applied: ``apply`` returns once the batch's transaction has committed;
- refused (compare-and-swap miss, Idempotency-Key taken): that unit alone was rolled back
  (its own subtransaction) and raises what ``units.apply`` raises;
- any other error of one unit (inside the batch a unit gives up waiting for a row lock
  after 20 ms: one waiting unit must not stall the others, nor deadlock two batches), or
  a batch that PostgreSQL refused as a whole (rolled back, e.g. a deferred ledger check
  at COMMIT): the units concerned are applied again one by one, so each gets its own,
  exact result;
- the batch's fate unknown (connection lost, server shut down: the COMMIT may have gone
  through): every unit in it raises that error, exactly as a lone unit would, never a
  refusal; recovery and the Idempotency-Key decide from what the database holds.
A unit whose caller is cancelled while still queued is dropped, never applied.
"""

from __future__ import annotations

import asyncio
import copy
from collections import deque
from dataclasses import dataclass
from typing import Any

import asyncpg

from kassa.db import units
from kassa.db.ops import Op

# PostgreSQL caches 64 subtransaction ids per backend (one per unit here); past that every
# other session's snapshot has to consult pg_subtrans.
MAX_BATCH = 32
RETRY_CONCURRENCY = 4  # units re-applied on their own at once, per flush
# Another flush starts beside a running one only once this many units wait: bigger
# batches cost PostgreSQL less per unit, a second flush cuts the wait. Open loop at
# 350 payments/s, p50/p99 ms: 1 waiting -> 15-17/76-114, 4 -> 16-23/59-237,
# 16 -> 26-49/174-189 (two runs each, noisy machine); closed loop (c=64) 16 gave
# 724-838/s, 1 gave 657/s on a quiet machine.
SECOND_FLUSH_AT = 4


@dataclass(slots=True)
class _Unit:
    ops: list[Op]
    done: asyncio.Future[None]


class BatchWriter:
    def __init__(self, pool: asyncpg.Pool, *, max_batch: int = MAX_BATCH,
                 max_inflight: int = 2) -> None:
        if not 1 <= max_batch <= MAX_BATCH:
            raise ValueError(f"max_batch must be 1..{MAX_BATCH}")
        if max_inflight < 1:
            raise ValueError("max_inflight must be >= 1")
        self._pool = pool
        self._max_batch = max_batch
        self._max_inflight = max_inflight
        self._queue: deque[_Unit] = deque()
        self._inflight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        # counters for benchmarks and tests: how much batching happened
        self.batches = 0
        self.units = 0

    async def apply(self, ops: list[Op]) -> None:
        if not ops:
            return
        unit = _Unit(ops, asyncio.get_running_loop().create_future())
        self._queue.append(unit)
        if self._inflight == 0 or (self._inflight < self._max_inflight
                                   and len(self._queue) >= SECOND_FLUSH_AT):
            self._inflight += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            await asyncio.shield(unit.done)
        except asyncio.CancelledError:
            if not unit.done.done():
                try:
                    self._queue.remove(unit)  # not sent yet: it will never be applied
                except ValueError:
                    pass  # in flight: its fate is the batch's
            raise

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = [self._queue.popleft()
                         for _ in range(min(self._max_batch, len(self._queue)))]
                await self._flush(batch)
        finally:
            self._inflight -= 1

    async def _flush(self, batch: list[_Unit]) -> None:
        self.batches += 1
        self.units += len(batch)
        try:
            if len(batch) == 1:
                await self._one(batch[0])
            else:
                await self._many(batch)
        except BaseException as exc:
            for u in batch:  # never leave a caller waiting, whatever went wrong here
                _settle(u, _fresh(exc))
            if not isinstance(exc, Exception):
                raise

    async def _many(self, batch: list[_Unit]) -> None:
        async with self._pool.acquire() as conn:
            try:
                results = await units.apply_batch(conn, [u.ops for u in batch])
            except Exception as exc:
                if not _rolled_back(exc, conn):
                    # the reply was lost: the batch may or may not have committed. Every
                    # unit gets what a lone unit would have got (recovery and the
                    # Idempotency-Key sort it out); never a refusal, which would invite
                    # the caller to do the work again.
                    for u in batch:
                        _settle(u, _fresh(exc))
                    return
                retry = batch  # refused inside PostgreSQL, so rolled back as a whole
            else:
                retry = []
                for unit, result in zip(batch, results, strict=True):
                    if result is None:
                        _settle(unit, None)
                        continue
                    refused = units.unit_error(result.get("sqlstate"), result.get("constraint"),
                                               result.get("message") or "")
                    if refused is not None:
                        _settle(unit, refused)
                    else:
                        retry.append(unit)  # e.g. it waited on another batch's lock
        # each on its own transaction for its own, exact answer; a few at a time so that
        # other requests' reads still find pool connections
        gate = asyncio.Semaphore(RETRY_CONCURRENCY)

        async def one(unit: _Unit) -> None:
            async with gate:
                await self._one(unit)

        await asyncio.gather(*(one(u) for u in retry))

    async def _one(self, unit: _Unit) -> None:
        try:
            await units.apply(self._pool, unit.ops)
        except BaseException as exc:
            _settle(unit, exc)
            if not isinstance(exc, Exception):
                raise
        else:
            _settle(unit, None)

    async def close(self) -> None:
        """Wait for queued and in-flight units (call before closing the pool)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def stats(self) -> dict[str, Any]:
        return {"batches": self.batches, "units": self.units,
                "units_per_batch": round(self.units / self.batches, 2) if self.batches else 0}


# Errors that leave a statement's outcome unknown even though PostgreSQL sent them:
# connection failures (class 08) and the server shutting down or crashing (57P01-57P03),
# which can arrive after the COMMIT went through.
_FATE_UNKNOWN_STATES = ("57P01", "57P02", "57P03")


def _rolled_back(exc: Exception, conn: asyncpg.Connection) -> bool:
    """Did PostgreSQL refuse the batch (so nothing of it committed)? Only an error the
    server reported on a connection that is still alive says so."""
    if not isinstance(exc, asyncpg.PostgresError) or isinstance(
            exc, asyncpg.PostgresConnectionError):
        return False
    state = getattr(exc, "sqlstate", None) or ""
    if state.startswith("08") or state in _FATE_UNKNOWN_STATES:
        return False
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:  # the pool already took a lost connection back
        return False


def _fresh(exc: BaseException) -> BaseException:
    """A copy per caller, so that raising it in many requests does not chain their
    tracebacks together."""
    try:
        clone = copy.copy(exc)
    except Exception:
        return exc
    clone.__traceback__ = None
    return clone


def _settle(unit: _Unit, exc: BaseException | None) -> None:
    if unit.done.done():
        return
    if exc is None:
        unit.done.set_result(None)
    else:
        unit.done.set_exception(exc)
        unit.done.exception()  # retrieved: a caller that went away leaves no warning
