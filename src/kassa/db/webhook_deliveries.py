"""Named SQL for merchant webhooks (migration 0003): endpoints, deliveries, attempts.

Deliveries are a work queue: ``next_attempt_at <= now()`` means due. A sender claims a
batch with ``FOR UPDATE SKIP LOCKED`` and, in the same statement, leases it by moving
``next_attempt_at`` to the end of the lease; the outcome is recorded only if the lease is
still the one it took (compare-and-swap on ``next_attempt_at``), so a sender that outlived
its lease cannot overwrite the work of the one that took over."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from kassa.db.pagination import Filter, fetch_page
from kassa.db.pool import Conn
from kassa.domain.lists import Bounds

_DELIVERY_COLUMNS = (
    "d.id, d.endpoint_id, d.event_id, d.event_type, d.status, d.attempt_count,"
    " floor(extract(epoch FROM d.next_attempt_at))::bigint AS next_attempt_at,"
    " floor(extract(epoch FROM d.last_attempt_at))::bigint AS last_attempt_at,"
    " d.last_status_code, d.last_duration_ms, d.last_error,"
    " floor(extract(epoch FROM d.created_at))::bigint AS created,"
    " floor(extract(epoch FROM d.completed_at))::bigint AS completed_at"
)


async def unpark_deliveries(conn: Conn, *, endpoint_id: str) -> int:
    """Deliveries parked while the endpoint was disabled become due again."""
    status = await conn.execute(
        "UPDATE webhook_deliveries SET next_attempt_at = now()"
        " WHERE endpoint_id = $1 AND next_attempt_at IS NULL"
        " AND status IN ('pending', 'retrying')", endpoint_id)
    return int(status.split()[-1])


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    id: int
    endpoint_id: str
    event_id: str
    event_type: str
    failures: int  # consecutive failures so far
    attempt_count: int
    lease: datetime  # next_attempt_at as leased: the compare-and-swap token
    age_seconds: float  # since the delivery was (re)scheduled: the retry window
    url: str | None  # None: the endpoint was deleted
    endpoint_enabled: bool
    secrets: tuple[str, ...]  # every secret that signs now (two during a rotation)
    body: bytes  # the event exactly as stored
    stripe_signature: bool = True  # also sign under Stripe-Signature (migration 0009)


# One statement, so one round trip and one short transaction. It reads a bounded window
# of the earliest due deliveries (the cost of a claim does not grow with the backlog)
# and, per endpoint in due order:
#   - takes up to ``free`` of them (this sender's open slots for the endpoint;
#     ``per_endpoint`` when it has none open), at most ``limit`` in all: locked (SKIP
#     LOCKED: concurrent senders take disjoint rows), leased and returned;
#   - for an endpoint this sender finds slow (``pace`` > 0: seconds per delivery at its
#     concurrency cap), moves the rest to when the endpoint can plausibly take them,
#     ``(rank - free) * pace`` from now (at most ``max_defer``), unattempted: a slow or
#     hanging endpoint's backlog cannot fill every window of every sender and hold back
#     the others, and it comes back at the pace the endpoint answers (no retry storm);
#   - leaves the rest due (a fast endpoint at its cap frees a slot within milliseconds).
# The re-check of next_attempt_at at the locking level skips rows another sender leased
# after this statement's snapshot was taken.
_CLAIM = """
WITH busy AS (
    SELECT * FROM unnest($3::text[], $4::int[], $5::float8[], $8::float8[])
                    AS b(endpoint_id, free, pace, max_defer)
), due AS (
    SELECT d.id, d.endpoint_id, d.next_attempt_at FROM webhook_deliveries d
     WHERE d.next_attempt_at <= now()
     ORDER BY d.next_attempt_at LIMIT $6
), ranked AS (
    SELECT d.id, d.next_attempt_at, coalesce(b.free, $7) AS free,
           coalesce(b.pace, 0) AS pace, b.max_defer,
           row_number() OVER (PARTITION BY d.endpoint_id ORDER BY d.next_attempt_at, d.id)
             AS rank
      FROM due d LEFT JOIN busy b ON b.endpoint_id = d.endpoint_id
), chosen AS (
    SELECT r.id,
           r.rank <= r.free AND sum((r.rank <= r.free)::int)
             OVER (ORDER BY r.next_attempt_at, r.id) <= $1 AS take,
           CASE WHEN r.rank > r.free AND r.pace > 0
                THEN least((r.rank - r.free) * r.pace, r.max_defer) END AS defer_s
      FROM ranked r
), locked AS (
    SELECT d.id FROM webhook_deliveries d
     WHERE d.id = ANY (ARRAY(SELECT id FROM chosen WHERE take OR defer_s IS NOT NULL))
       AND d.next_attempt_at <= now()
       FOR UPDATE OF d SKIP LOCKED
), leased AS (
    UPDATE webhook_deliveries d SET next_attempt_at = now() + make_interval(
               secs => CASE WHEN c.take THEN $2 ELSE c.defer_s END)
      FROM locked l JOIN chosen c ON c.id = l.id
     WHERE d.id = l.id
    RETURNING d.id, d.endpoint_id, d.event_id, d.event_type, d.failures, d.attempt_count,
              d.next_attempt_at AS lease,
              extract(epoch FROM now() - d.scheduled_at)::float8 AS age_seconds, c.take
)
SELECT l.*, w.url, coalesce(w.status = 'enabled', false) AS endpoint_enabled,
       CASE WHEN w.id IS NULL THEN ARRAY[]::text[]
            WHEN w.previous_secret IS NOT NULL AND w.previous_secret_expires_at > now()
            THEN ARRAY[w.secret, w.previous_secret]
            ELSE ARRAY[w.secret] END AS secrets,
       coalesce(w.stripe_signature, true) AS stripe_signature,
       CASE WHEN l.take THEN e.data::text END AS body
  FROM leased l
  LEFT JOIN webhook_endpoints w ON w.id = l.endpoint_id AND l.take
  LEFT JOIN events e ON e.id = l.event_id AND l.take
"""


@dataclass(frozen=True, slots=True)
class Busy:
    """What this sender knows of an endpoint when it claims."""

    free: int  # how many more requests it may open to it
    pace: float = 0.0  # seconds per delivery when slow (0: not slow; never deferred)
    max_defer: float = 0.0  # how far ahead its rows may be moved


async def claim_due(conn: Conn, *, limit: int, lease_seconds: float, per_endpoint: int,
                    busy: dict[str, Busy], window: int) -> tuple[list[ClaimedDelivery], int]:
    """Claim and lease up to ``limit`` due deliveries among the ``window`` earliest due.
    Returns them and how many deliveries of slow endpoints were deferred."""
    rows = await conn.fetch(_CLAIM, limit, lease_seconds, list(busy),
                            [b.free for b in busy.values()], [b.pace for b in busy.values()],
                            window, per_endpoint, [b.max_defer for b in busy.values()])
    claimed = [ClaimedDelivery(
        id=r["id"], endpoint_id=r["endpoint_id"], event_id=r["event_id"],
        event_type=r["event_type"], failures=r["failures"], attempt_count=r["attempt_count"],
        lease=r["lease"], age_seconds=r["age_seconds"], url=r["url"],
        endpoint_enabled=r["endpoint_enabled"], secrets=tuple(r["secrets"]),
        body=(r["body"] or "").encode(), stripe_signature=r["stripe_signature"])
        for r in rows if r["take"]]
    return claimed, len(rows) - len(claimed)


# Outcomes of a batch of attempts in one statement: the attempt rows always (they
# happened), the delivery only where our lease still holds.
_RECORD = """
WITH r AS (
    SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(
        id bigint, lease timestamptz, status text, retry_in float8, succeeded boolean,
        status_code integer, duration_ms integer, error text, response text,
        attempted_at float8)
), updated AS (
    UPDATE webhook_deliveries d SET
        status = r.status,
        attempt_count = d.attempt_count + 1,
        failures = CASE WHEN r.succeeded THEN 0 ELSE d.failures + 1 END,
        next_attempt_at = CASE WHEN r.status = 'retrying'
                               THEN now() + make_interval(secs => r.retry_in) END,
        last_attempt_at = to_timestamp(r.attempted_at),
        last_status_code = r.status_code,
        last_duration_ms = r.duration_ms,
        last_error = r.error,
        completed_at = CASE WHEN r.status IN ('delivered', 'dead') THEN now() END
      FROM r WHERE d.id = r.id AND d.next_attempt_at = r.lease
    RETURNING d.id
), attempts AS (
    INSERT INTO webhook_attempts (delivery_id, attempted_at, succeeded, status_code,
                                  duration_ms, error, response_excerpt)
    SELECT r.id, to_timestamp(r.attempted_at), r.succeeded, r.status_code, r.duration_ms,
           r.error, r.response
      FROM r WHERE EXISTS (SELECT 1 FROM webhook_deliveries x WHERE x.id = r.id)
)
SELECT id FROM updated
"""


async def record_attempts(conn: Conn, outcomes: list[dict[str, Any]]) -> set[int]:
    """outcomes: {id, lease (ISO text), status, retry_in, succeeded, status_code,
    duration_ms, error, response, attempted_at (unix)}. Returns the deliveries whose
    lease still held (the others were taken over; their attempt rows are still kept)."""
    if not outcomes:
        return set()
    for _ in range(3):
        try:
            rows = await conn.fetch(_RECORD, outcomes)
            return {r["id"] for r in rows}
        except asyncpg.ForeignKeyViolationError:
            continue  # an endpoint (and its deliveries) was deleted meanwhile: re-filter
    rows = await conn.fetch(_RECORD, outcomes)
    return {r["id"] for r in rows}


async def park(conn: Conn, leases: list[tuple[int, datetime]]) -> None:
    """Deliveries of a disabled endpoint wait, unattempted, until it is enabled again."""
    if leases:
        await conn.execute(
            "UPDATE webhook_deliveries d SET next_attempt_at = NULL"
            " FROM unnest($1::bigint[], $2::timestamptz[]) AS r(id, lease)"
            " WHERE d.id = r.id AND d.next_attempt_at = r.lease",
            [i for i, _ in leases], [lease for _, lease in leases])


async def delete_deliveries(conn: Conn, delivery_ids: list[int]) -> None:
    """Deliveries whose endpoint no longer exists."""
    if delivery_ids:
        await conn.execute(
            "DELETE FROM webhook_deliveries d WHERE d.id = ANY($1::bigint[])"
            " AND NOT EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.id = d.endpoint_id)",
            delivery_ids)


async def sweep_parked(conn: Conn, *, limit: int = 10_000) -> int:
    """Repair the races of enable/disable/delete with concurrent claims: parked deliveries
    of enabled endpoints become due, those of deleted endpoints go."""
    unparked = await conn.execute(
        "UPDATE webhook_deliveries d SET next_attempt_at = now() WHERE d.id IN ("
        " SELECT p.id FROM webhook_deliveries p JOIN webhook_endpoints w"
        " ON w.id = p.endpoint_id AND w.status = 'enabled'"
        " WHERE p.next_attempt_at IS NULL AND p.status IN ('pending', 'retrying')"
        " LIMIT $1) AND d.next_attempt_at IS NULL", limit)
    orphans = await conn.execute(
        "DELETE FROM webhook_deliveries d WHERE d.id IN ("
        " SELECT p.id FROM webhook_deliveries p"
        " WHERE p.next_attempt_at IS NULL AND p.status IN ('pending', 'retrying')"
        " AND NOT EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.id = p.endpoint_id)"
        " LIMIT $1)", limit)
    return int(unparked.split()[-1]) + int(orphans.split()[-1])


async def expire_finished(conn: Conn, *, older_than_days: float, limit: int = 5000) -> int:
    """Forget delivered and dead deliveries (and their attempts) created before the
    retention period, oldest first; scans from the oldest id, so each pass is cheap."""
    status = await conn.execute(
        "DELETE FROM webhook_deliveries WHERE id IN ("
        " SELECT id FROM webhook_deliveries"
        " WHERE created_at < now() - make_interval(secs => $1 * 86400)"
        " AND status IN ('delivered', 'dead') ORDER BY id LIMIT $2)",
        float(older_than_days), limit)
    return int(status.split()[-1])


async def list_deliveries(conn: Conn, *, merchant_id: str, endpoint_id: str, limit: int,
                          starting_after: int | None, ending_before: int | None,
                          status: str | None, created: Bounds | None = None
                          ) -> tuple[list[asyncpg.Record], bool]:
    """An endpoint's deliveries, newest first; returns (rows, has_more)."""
    filters: list[Filter] = [("d.endpoint_id = {}", endpoint_id)]
    if status is not None:
        filters.append(("d.status = {}", status))
    return await fetch_page(
        conn, select=f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries d",
        table="webhook_deliveries", alias="d", key="id", cursor_is_key=True,
        merchant_id=merchant_id, limit=limit, starting_after=starting_after,
        ending_before=ending_before, filters=filters,
        bounds=[("floor(extract(epoch FROM d.created_at))", created)])


async def attempts_for(conn: Conn, delivery_ids: list[int]) -> dict[int, list[asyncpg.Record]]:
    rows = await conn.fetch(
        "SELECT delivery_id, floor(extract(epoch FROM attempted_at))::bigint AS attempted_at,"
        " succeeded, status_code, duration_ms, error, response_excerpt"
        " FROM webhook_attempts WHERE delivery_id = ANY($1::bigint[])"
        " ORDER BY delivery_id, id", delivery_ids)
    out: dict[int, list[asyncpg.Record]] = {}
    for r in rows:
        out.setdefault(r["delivery_id"], []).append(r)
    return out


async def pending_counts(conn: Conn, *, merchant_id: str, event_ids: list[str]
                         ) -> dict[str, int]:
    """Per event: deliveries not (yet) answered with a 2xx, as Stripe's pending_webhooks."""
    rows = await conn.fetch(
        "SELECT event_id, count(*) AS n FROM webhook_deliveries"
        " WHERE event_id = ANY($1::text[]) AND merchant_id = $2 AND status <> 'delivered'"
        " GROUP BY event_id", event_ids, merchant_id)
    return {r["event_id"]: int(r["n"]) for r in rows}


async def list_dead(conn: Conn, *, merchant_id: str | None, limit: int) -> list[asyncpg.Record]:
    """Dead deliveries, most recently given up first (operators' view, all merchants)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT {_DELIVERY_COLUMNS}, d.merchant_id, w.url FROM webhook_deliveries d"
        " LEFT JOIN webhook_endpoints w ON w.id = d.endpoint_id"
        " WHERE d.status = 'dead' AND ($1::text IS NULL OR d.merchant_id = $1)"
        " ORDER BY d.completed_at DESC, d.id DESC LIMIT $2", merchant_id, limit)
    return rows


async def event_exists(conn: Conn, *, merchant_id: str, event_id: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM events WHERE id = $1 AND merchant_id = $2)",
        event_id, merchant_id))


async def event_merchant(conn: Conn, event_id: str) -> str | None:
    """For operators acting on an event id (the CLI); never for API reads."""
    merchant: str | None = await conn.fetchval(
        "SELECT merchant_id FROM events WHERE id = $1", event_id)
    return merchant


_RESCHEDULE = (
    "status = 'pending', next_attempt_at = now(), scheduled_at = now(), failures = 0,"
    " completed_at = NULL")


async def redeliver_event(conn: Conn, *, merchant_id: str, event_id: str
                          ) -> list[asyncpg.Record]:
    """Schedule the event's delivered and dead deliveries again (a fresh retry window)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"WITH d AS (UPDATE webhook_deliveries SET {_RESCHEDULE}"
        " WHERE event_id = $1 AND merchant_id = $2 AND status IN ('delivered', 'dead')"
        " RETURNING *)"
        f" SELECT {_DELIVERY_COLUMNS} FROM d ORDER BY d.id", event_id, merchant_id)
    return rows


async def redeliver_to_endpoint(conn: Conn, *, merchant_id: str, event_id: str,
                                endpoint_id: str) -> list[asyncpg.Record]:
    """Schedule the event for one of the merchant's endpoints: a new delivery if it never
    had one, else its delivered or dead one again (a pending one is left as it is)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "WITH d AS (INSERT INTO webhook_deliveries (endpoint_id, merchant_id, event_id,"
        " event_type)"
        " SELECT w.id, e.merchant_id, e.id, e.type FROM events e"
        " JOIN webhook_endpoints w ON w.id = $3 AND w.merchant_id = e.merchant_id"
        " WHERE e.id = $1 AND e.merchant_id = $2"
        " ON CONFLICT (event_id, endpoint_id) DO UPDATE SET"
        " status = 'pending', next_attempt_at = now(), scheduled_at = now(), failures = 0,"
        " completed_at = NULL WHERE webhook_deliveries.status IN ('delivered', 'dead')"
        " RETURNING *)"
        f" SELECT {_DELIVERY_COLUMNS} FROM d", event_id, merchant_id, endpoint_id)
    return rows
