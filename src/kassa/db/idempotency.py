"""Named SQL for Idempotency-Keys outside a unit of work: reading a key, taking over a
stale one, handing it on or forgetting it, and expiry (the writes inside a unit of work
are ops: ClaimIdempotency, SetIdempotencyResource, CompleteIdempotency)."""

from __future__ import annotations

from dataclasses import dataclass

from kassa.db.pool import Conn


@dataclass(frozen=True, slots=True)
class IdempotencyRow:
    fingerprint: bytes
    locked: bool
    stale: bool
    response_status: int | None
    response_body: bytes | None
    resource_id: str | None
    request_id: str | None  # the req_ id of the request that claimed it (Original-Request)


async def get_idempotency_key(conn: Conn, *, merchant_id: str, key: str,
                              lock_timeout_s: float) -> IdempotencyRow | None:
    row = await conn.fetchrow(
        "SELECT fingerprint, locked_at IS NOT NULL AS locked,"
        " locked_at < now() - make_interval(secs => $3) AS stale,"
        " response_status, response_body, resource_id, request_id"
        " FROM idempotency_keys WHERE merchant_id = $1 AND key = $2",
        merchant_id, key, lock_timeout_s)
    if row is None:
        return None
    return IdempotencyRow(row["fingerprint"], row["locked"], bool(row["stale"]),
                          row["response_status"], row["response_body"], row["resource_id"],
                          row["request_id"])


async def take_over_stale_idempotency_key(conn: Conn, *, merchant_id: str, key: str,
                                          lock_timeout_s: float) -> bool:
    """Re-lock a key whose holder died; only one retry can win (row lock + predicate)."""
    status = await conn.execute(
        "UPDATE idempotency_keys SET locked_at = now()"
        " WHERE merchant_id = $1 AND key = $2 AND response_status IS NULL"
        " AND locked_at < now() - make_interval(secs => $3)",
        merchant_id, key, lock_timeout_s)
    return bool(status.endswith(" 1"))


async def unlock_idempotency_key(conn: Conn, *, merchant_id: str, key: str) -> None:
    """Hand an unanswered key to the next retry at once (its lock is stale from now on),
    which takes it over and resumes the saga from its recovery point."""
    await conn.execute(
        "UPDATE idempotency_keys SET locked_at = '-infinity'"
        " WHERE merchant_id = $1 AND key = $2 AND response_status IS NULL", merchant_id, key)


async def release_idempotency_key(conn: Conn, *, merchant_id: str, key: str) -> None:
    """Forget a key whose request changed nothing, so a retry runs afresh."""
    await conn.execute(
        "DELETE FROM idempotency_keys WHERE merchant_id = $1 AND key = $2"
        " AND response_status IS NULL", merchant_id, key)


async def expire_idempotency_keys(conn: Conn, *, older_than_hours: float,
                                  limit: int = 5000) -> int:
    status = await conn.execute(
        "DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY("
        " SELECT ctid FROM idempotency_keys"
        " WHERE created_at < now() - $1::float8 * interval '1 hour'"
        " AND (locked_at IS NULL) LIMIT $2))",
        older_than_hours, limit)
    return int(status.split()[-1])
