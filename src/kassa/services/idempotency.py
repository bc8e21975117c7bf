"""Idempotency keys (ARCHITECTURE §4, after Brandur Leach's Postgres design).

The unique (merchant, key) row is the guarantee. A request's key is claimed by its first
commit (in the same transaction as its first state change); a repeat with the same
fingerprint replays the stored response, with a different one is refused, and while the
first still runs gets 409. A holder that died leaves a stale lock that the next retry
takes over, resuming from the recovery point the saga left.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from kassa.db import idempotency as idempotency_db
from kassa.db.units import IdempotencyKeyTaken
from kassa.domain.errors import IdempotencyError, IdempotencyInFlight, InvalidRequest
from kassa.services.context import Kassa
from kassa.services.uow import IdempotencyHandle, Renderer, UnitOfWork

__all__ = ["IdempotencyKeyTaken", "Replay", "prepare", "resolve_existing", "complete",
           "release", "unlock", "expire", "fingerprint", "key_exists"]

MAX_KEY_LENGTH = 255


@dataclass(frozen=True, slots=True)
class Replay:
    status: int
    body: bytes
    original_request: str | None = None  # the req_ id of the request that stored it


def fingerprint(method: str, path: str, params: dict[str, Any]) -> bytes:
    canonical = orjson.dumps([method, path, params], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).digest()


def prepare(*, merchant_id: str, key: str, method: str, path: str, params: dict[str, Any],
            render: Renderer, request_id: str | None = None) -> IdempotencyHandle:
    """A handle for a new request; its first commit claims the key."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters long.",
            param="Idempotency-Key")
    return IdempotencyHandle(merchant_id=merchant_id, key=key, render=render,
                             fingerprint=fingerprint(method, path, params), method=method,
                             path=path, request_id=request_id)


async def resolve_existing(kassa: Kassa, handle: IdempotencyHandle
                           ) -> IdempotencyHandle | Replay | None:
    """The key was taken by an earlier request: its stored response, a takeover of its
    stale lock, or an error (different parameters → 400, still running → 409). None when
    the row vanished meanwhile (released), so the caller may simply run again."""
    row = await idempotency_db.get_idempotency_key(
        kassa.pool, merchant_id=handle.merchant_id, key=handle.key,
        lock_timeout_s=kassa.idempotency_lock_timeout_seconds)
    if row is None:
        return None
    if row.fingerprint != handle.fingerprint:
        raise IdempotencyError(
            "Keys for idempotent requests can only be used with the same parameters they "
            f"were first used with. Try using a key other than '{handle.key}' if you meant "
            "to execute a different request.", param="Idempotency-Key")
    if row.response_status is not None and row.response_body is not None:
        return Replay(row.response_status, row.response_body, row.request_id)
    if row.stale and await idempotency_db.take_over_stale_idempotency_key(
            kassa.pool, merchant_id=handle.merchant_id, key=handle.key,
            lock_timeout_s=kassa.idempotency_lock_timeout_seconds):
        return IdempotencyHandle(
            merchant_id=handle.merchant_id, key=handle.key, render=handle.render,
            fingerprint=handle.fingerprint, method=handle.method, path=handle.path,
            request_id=handle.request_id,
            # the key's row exists only because the first holder committed something
            claimed=True, took_over=True, resource_id=row.resource_id, side_effects=True)
    raise IdempotencyInFlight(
        "There is currently another in-progress request using this Idempotency-Key; "
        "retry this request later.", param="Idempotency-Key")


async def key_exists(kassa: Kassa, handle: IdempotencyHandle) -> bool:
    row = await idempotency_db.get_idempotency_key(
        kassa.pool, merchant_id=handle.merchant_id, key=handle.key,
        lock_timeout_s=kassa.idempotency_lock_timeout_seconds)
    return row is not None


async def complete(kassa: Kassa, handle: IdempotencyHandle, response: object) -> None:
    """Store the response (claiming the key too if nothing was committed before)."""
    async with UnitOfWork(kassa, handle) as uow:
        await uow.commit(response=response, side_effects=False)


async def unlock(kassa: Kassa, handle: IdempotencyHandle) -> None:
    """A retryable refusal (409 after lost compare-and-swaps) is no final answer: the key
    stays unanswered and the next retry takes it over at once."""
    if handle.claimed:
        await idempotency_db.unlock_idempotency_key(kassa.pool, merchant_id=handle.merchant_id,
                                                    key=handle.key)


async def release(kassa: Kassa, handle: IdempotencyHandle) -> None:
    if handle.claimed:
        await idempotency_db.release_idempotency_key(kassa.pool, merchant_id=handle.merchant_id,
                                                     key=handle.key)


async def expire(kassa: Kassa) -> int:
    return await idempotency_db.expire_idempotency_keys(
        kassa.pool, older_than_hours=kassa.idempotency_retention_hours)
