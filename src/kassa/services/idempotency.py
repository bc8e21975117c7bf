"""Idempotency keys (ARCHITECTURE §4, after Brandur Leach's Postgres design).

The unique (merchant, key) row is the guarantee: the first request inserts it locked;
a repeat with the same fingerprint replays the stored response, with a different one is
refused, and while the first still runs gets 409. A holder that died leaves a stale lock
that the next retry takes over, resuming from the recovery point the saga left.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from kassa.db import repositories as repo
from kassa.domain.errors import IdempotencyError, IdempotencyInFlight, InvalidRequest
from kassa.services.context import Kassa
from kassa.services.uow import IdempotencyHandle, Renderer

MAX_KEY_LENGTH = 255


@dataclass(frozen=True, slots=True)
class Replay:
    status: int
    body: bytes


def fingerprint(method: str, path: str, params: dict[str, Any]) -> bytes:
    canonical = orjson.dumps([method, path, params], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).digest()


async def begin(kassa: Kassa, *, merchant_id: str, key: str, method: str, path: str,
                params: dict[str, Any], render: Renderer) -> IdempotencyHandle | Replay:
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters long.",
            param="Idempotency-Key")
    fp = fingerprint(method, path, params)
    for _ in range(3):  # the row can vanish between INSERT and SELECT (released/expired)
        if await repo.claim_idempotency_key(kassa.pool, merchant_id=merchant_id, key=key,
                                            fingerprint=fp, method=method, path=path):
            return IdempotencyHandle(merchant_id=merchant_id, key=key, render=render)
        row = await repo.get_idempotency_key(
            kassa.pool, merchant_id=merchant_id, key=key,
            lock_timeout_s=kassa.idempotency_lock_timeout_seconds)
        if row is None:
            continue
        if row.fingerprint != fp:
            raise IdempotencyError(
                "Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with. Try using a key other than '{key}' if you meant to "
                "execute a different request.", param="Idempotency-Key")
        if row.response_status is not None and row.response_body is not None:
            return Replay(row.response_status, row.response_body)
        if row.stale and await repo.take_over_stale_idempotency_key(
                kassa.pool, merchant_id=merchant_id, key=key,
                lock_timeout_s=kassa.idempotency_lock_timeout_seconds):
            return IdempotencyHandle(merchant_id=merchant_id, key=key, render=render,
                                     took_over=True, resource_id=row.resource_id)
        raise IdempotencyInFlight(
            "There is currently another in-progress request using this Idempotency-Key; "
            "retry this request later.", param="Idempotency-Key")
    raise IdempotencyInFlight("The Idempotency-Key is being released; retry.")


async def complete(kassa: Kassa, handle: IdempotencyHandle, response: object) -> None:
    status, body = handle.render(response)
    await repo.complete_idempotency_key(kassa.pool, merchant_id=handle.merchant_id,
                                        key=handle.key, status=status, body=body)
    handle.completed = True


async def release(kassa: Kassa, handle: IdempotencyHandle) -> None:
    await repo.release_idempotency_key(kassa.pool, merchant_id=handle.merchant_id,
                                       key=handle.key)


async def expire(kassa: Kassa) -> int:
    return await repo.expire_idempotency_keys(
        kassa.pool, older_than_hours=kassa.idempotency_retention_hours)
