"""Named SQL for every table kassa writes; the locking each statement relies on is spelled out.

All functions take an asyncpg connection (or pool for single reads) and are scoped by
merchant where an object belongs to one. Compare-and-swap updates raise
ConcurrentModification when the row moved under us.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from kassa.db import search
from kassa.db.filters import bounds_sql
from kassa.domain.errors import ConcurrentModification
from kassa.domain.ledger import Posting
from kassa.domain.lists import Bounds
from kassa.domain.money import Money
from kassa.domain.payments import (
    Attempt,
    AttemptStatus,
    Operation,
    PaymentIntent,
    PaymentStatus,
    Refund,
    RefundStatus,
    VoidPurpose,
)
from kassa.domain.search import FieldKind
from kassa.domain.search import parse as parse_search

Conn = asyncpg.Connection | asyncpg.Pool
Op = dict[str, Any]

KS409 = "KS409"  # kassa_apply: a compare-and-swap found the row moved


class IdempotencyKeyTaken(Exception):
    """A unit of work tried to claim an Idempotency-Key that already exists."""


async def apply(conn: Conn, ops: list[Op]) -> None:
    """Apply a unit of work's writes in one round trip (kassa_apply, db/sql/apply.sql): inside
    the connection's open transaction, or as one implicit transaction of its own."""
    if not ops:
        return
    try:
        await conn.execute("SELECT kassa_apply($1::jsonb)", ops)
    except asyncpg.PostgresError as exc:
        mapped = unit_error(getattr(exc, "sqlstate", None),
                            getattr(exc, "constraint_name", None),
                            exc.args[0] if exc.args else "")
        if mapped is None:
            raise
        raise mapped from None


def unit_error(sqlstate: str | None, constraint: str | None, message: str
               ) -> Exception | None:
    """The exception a unit of work's refusal maps to, or None for a real failure."""
    if sqlstate == "23505" and constraint == "idempotency_keys_pkey":
        return IdempotencyKeyTaken()
    if sqlstate == KS409:
        return ConcurrentModification(f"{message or 'object'}; retry the request.")
    return None


async def apply_batch(conn: Conn, units: list[list[Op]]) -> list[dict[str, Any] | None]:
    """Several units of work in one transaction (kassa_apply_batch, migration 0006), each in
    its own subtransaction: per unit None (applied) or {sqlstate, constraint, message}."""
    result: list[dict[str, Any] | None] = await conn.fetchval(
        "SELECT kassa_apply_batch($1::jsonb)", units)
    return result


# ---------------------------------------------------------------- merchants and keys


async def insert_merchant(conn: Conn, *, merchant_id: str, name: str, created: int) -> None:
    await conn.execute("INSERT INTO merchants (id, name, created) VALUES ($1, $2, $3)",
                       merchant_id, name, created)


async def insert_api_key(conn: Conn, *, key_id: str, merchant_id: str, kind: str,
                         key_hash: bytes, last4: str, created: int) -> None:
    await conn.execute(
        "INSERT INTO api_keys (id, merchant_id, kind, key_hash, last4, created)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        key_id, merchant_id, kind, key_hash, last4, created)


async def find_api_key(conn: Conn, key_hash: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, merchant_id, kind, livemode FROM api_keys"
        " WHERE key_hash = $1 AND revoked_at IS NULL", key_hash)


async def revoke_api_key(conn: Conn, *, key_id: str) -> bool:
    status = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", key_id)
    return bool(status.endswith(" 1"))


async def get_merchant(conn: Conn, merchant_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT id, name, created FROM merchants WHERE id = $1",
                               merchant_id)


async def list_merchants(conn: Conn) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT id, name, created FROM merchants ORDER BY created, id")


# ---------------------------------------------------------------- idempotency keys


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


def op_claim_idempotency(*, merchant_id: str, key: str, fingerprint: bytes, method: str,
                         path: str, request_id: str | None = None) -> Op:
    return {"op": "claim_idempotency", "row": {
        "merchant_id": merchant_id, "key": key, "fingerprint": fingerprint.hex(),
        "method": method, "path": path, "request_id": request_id}}


def op_complete_idempotency(*, merchant_id: str, key: str, status: int, body: bytes,
                            for_attempt: str | None = None) -> Op:
    """Store the key's answer. ``for_attempt``: recovery (or a webhook) answering for the
    request that started this attempt — unless an answer is stored already, and only if
    the key is that request's (not reused after it expired)."""
    row: dict[str, Any] = {"merchant_id": merchant_id, "key": key, "status": status,
                           "body": body.decode()}
    if for_attempt is not None:
        row["only_open"] = True
        row["for_attempt"] = for_attempt
    return {"op": "complete_idempotency", "row": row}


def op_set_idempotency_resource(*, merchant_id: str, key: str, resource_id: str) -> Op:
    return {"op": "set_idempotency_resource", "row": {
        "merchant_id": merchant_id, "key": key, "resource_id": resource_id}}


async def complete_idempotency_key(conn: Conn, *, merchant_id: str, key: str, status: int,
                                   body: bytes) -> None:
    await apply(conn, [op_complete_idempotency(merchant_id=merchant_id, key=key,
                                               status=status, body=body)])


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


# ---------------------------------------------------------------- payment intents

_PI_COLUMNS = (
    "id, merchant_id, amount, currency, status, capture_method, payment_method, description,"
    " metadata, amount_capturable, amount_received, amount_refunded, last_payment_error,"
    " next_action, canceled_at, cancellation_reason, latest_charge, psp, psp_reference,"
    " pending_attempt_id, created, version, client_secret, confirmation_method, receipt_email,"
    " statement_descriptor, statement_descriptor_suffix, setup_future_usage, shipping,"
    " automatic_payment_methods, payment_method_options"
)
# the Stripe fields a row carries as they are (domain/intent_fields.py has their rules)
_PI_FIELDS = ("client_secret", "confirmation_method", "receipt_email", "statement_descriptor",
              "statement_descriptor_suffix", "setup_future_usage", "shipping",
              "automatic_payment_methods", "payment_method_options")


def _payment(row: asyncpg.Record) -> PaymentIntent:
    return PaymentIntent(
        id=row["id"], merchant_id=row["merchant_id"],
        amount=Money(row["amount"], row["currency"]), status=PaymentStatus(row["status"]),
        capture_method=row["capture_method"], created=row["created"],
        payment_method=row["payment_method"], description=row["description"],
        metadata=row["metadata"], amount_capturable=row["amount_capturable"],
        amount_received=row["amount_received"], amount_refunded=row["amount_refunded"],
        last_payment_error=row["last_payment_error"], next_action=row["next_action"],
        canceled_at=row["canceled_at"], cancellation_reason=row["cancellation_reason"],
        latest_charge=row["latest_charge"], psp=row["psp"], psp_reference=row["psp_reference"],
        pending_attempt_id=row["pending_attempt_id"], version=row["version"],
        **{name: row[name] for name in _PI_FIELDS},
    )


def _payment_row(p: PaymentIntent) -> dict[str, Any]:
    return {
        "id": p.id, "merchant_id": p.merchant_id, "amount": p.amount.minor,
        "currency": p.currency, "status": p.status.value, "capture_method": p.capture_method,
        "payment_method": p.payment_method, "description": p.description,
        "metadata": p.metadata, "amount_capturable": p.amount_capturable,
        "amount_received": p.amount_received, "amount_refunded": p.amount_refunded,
        "last_payment_error": p.last_payment_error, "next_action": p.next_action,
        "canceled_at": p.canceled_at, "cancellation_reason": p.cancellation_reason,
        "latest_charge": p.latest_charge, "psp": p.psp, "psp_reference": p.psp_reference,
        "pending_attempt_id": p.pending_attempt_id, "created": p.created, "version": p.version,
        **{name: getattr(p, name) for name in _PI_FIELDS},
    }


def op_insert_payment(p: PaymentIntent) -> Op:
    return {"op": "insert_payment", "row": _payment_row(p)}


def op_update_payment(p: PaymentIntent) -> Op:
    """Compare-and-swap on the version the caller read; the object takes the next one."""
    op = {"op": "update_payment", "row": _payment_row(p)}
    p.version += 1
    return op


async def insert_payment(conn: Conn, p: PaymentIntent) -> None:
    await apply(conn, [op_insert_payment(p)])


async def get_payment(conn: Conn, *, merchant_id: str, payment_id: str) -> PaymentIntent | None:
    row = await conn.fetchrow(
        f"SELECT {_PI_COLUMNS} FROM payment_intents WHERE id = $1 AND merchant_id = $2",
        payment_id, merchant_id)
    return None if row is None else _payment(row)


async def get_payment_unscoped(conn: Conn, payment_id: str) -> PaymentIntent | None:
    """For workers acting on behalf of the platform (recovery); never for API reads."""
    row = await conn.fetchrow(f"SELECT {_PI_COLUMNS} FROM payment_intents WHERE id = $1",
                              payment_id)
    return None if row is None else _payment(row)


async def update_payment(conn: Conn, p: PaymentIntent) -> None:
    """Compare-and-swap on version: the caller read version ``p.version``."""
    version = p.version
    try:
        await apply(conn, [op_update_payment(p)])
    except BaseException:
        p.version = version
        raise


async def list_objects(conn: Conn, *, table: str, columns: str, merchant_id: str, limit: int,
                       starting_after: str | None, ending_before: str | None,
                       where: str = "", args: tuple[Any, ...] = (),
                       created: Bounds | None = None) -> tuple[list[asyncpg.Record], bool]:
    """Newest first, cursor-paginated by id like Stripe; returns (rows, has_more)."""
    assert table in {"payment_intents", "refunds", "events", "balance_transactions"}
    params: list[Any] = [merchant_id, limit + 1, *args]
    cond = "merchant_id = $1" + (f" AND {where}" if where else "")
    cond += bounds_sql("created", created, params)
    order = "DESC"
    if starting_after is not None:
        params.append(starting_after)
        cond += (f" AND seq < (SELECT seq FROM {table} WHERE id = ${len(params)}"
                 " AND merchant_id = $1)")
    elif ending_before is not None:
        params.append(ending_before)
        cond += (f" AND seq > (SELECT seq FROM {table} WHERE id = ${len(params)}"
                 " AND merchant_id = $1)")
        order = "ASC"
    rows = await conn.fetch(
        f"SELECT {columns} FROM {table} WHERE {cond} ORDER BY seq {order} LIMIT $2", *params)
    has_more = len(rows) > limit
    rows = rows[:limit]
    if order == "ASC":
        rows.reverse()
    return rows, has_more


async def list_payments(conn: Conn, *, merchant_id: str, limit: int, starting_after: str | None,
                        ending_before: str | None, created: Bounds | None = None
                        ) -> tuple[list[PaymentIntent], bool]:
    rows, more = await list_objects(conn, table="payment_intents", columns=_PI_COLUMNS,
                                    merchant_id=merchant_id, limit=limit,
                                    starting_after=starting_after, ending_before=ending_before,
                                    created=created)
    return [_payment(r) for r in rows], more


PAYMENTS_SEARCH = search.Searchable(
    table="payment_intents", columns=_PI_COLUMNS,
    fields={"amount": search.SearchField(FieldKind.NUMBER, "amount"),
            "created": search.SearchField(FieldKind.NUMBER, "created"),
            "currency": search.SearchField(FieldKind.TOKEN, "currency", lower=True),
            "metadata": search.SearchField(FieldKind.TOKEN, "metadata"),
            "status": search.SearchField(FieldKind.TOKEN, "status")})


async def search_payments(conn: Conn, *, merchant_id: str, query: str, limit: int,
                          page: str | None) -> tuple[list[PaymentIntent], str | None]:
    parsed = parse_search(query, PAYMENTS_SEARCH.kinds)
    rows, next_page = await search.search(conn, PAYMENTS_SEARCH, merchant_id=merchant_id,
                                          query=parsed, limit=limit, page=page)
    return [_payment(r) for r in rows], next_page


async def object_exists(conn: Conn, *, table: str, merchant_id: str, object_id: str) -> bool:
    assert table in {"payment_intents", "refunds", "events", "balance_transactions"}
    return bool(await conn.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM {table} WHERE id = $1 AND merchant_id = $2)",
        object_id, merchant_id))


# ---------------------------------------------------------------- attempts


def _attempt(row: asyncpg.Record) -> Attempt:
    return Attempt(
        id=row["id"], merchant_id=row["merchant_id"], payment_intent_id=row["payment_intent_id"],
        operation=Operation(row["operation"]), psp=row["psp"],
        status=AttemptStatus(row["status"]), amount=Money(row["amount"], row["currency"]),
        capture=row["capture"], refund_id=row["refund_id"], psp_reference=row["psp_reference"],
        error=row["error"], return_url=row["return_url"],
        idempotency_key=row["idempotency_key"],
        purpose=None if row["purpose"] is None else VoidPurpose(row["purpose"]),
        tries=row["tries"], created=int(row["created_at"].timestamp()))


_ATTEMPT_COLUMNS = ("id, merchant_id, payment_intent_id, operation, psp, status, amount,"
                    " currency, capture, refund_id, psp_reference, error, return_url,"
                    " idempotency_key, purpose, tries, created_at")


def op_insert_attempt(a: Attempt, *, check_after_s: float) -> Op:
    """Insert an attempt; recovery looks at it ``check_after_s`` from now unless its
    outcome is recorded first."""
    return {"op": "insert_attempt", "row": {
        "id": a.id, "merchant_id": a.merchant_id, "payment_intent_id": a.payment_intent_id,
        "refund_id": a.refund_id, "operation": a.operation.value, "psp": a.psp,
        "status": a.status.value, "amount": a.amount.minor, "currency": a.amount.currency,
        "capture": a.capture, "psp_reference": a.psp_reference, "error": a.error,
        "return_url": a.return_url, "idempotency_key": a.idempotency_key,
        "purpose": None if a.purpose is None else a.purpose.value,
        "check_after_s": check_after_s}}


async def get_attempt(conn: Conn, attempt_id: str) -> Attempt | None:
    row = await conn.fetchrow(f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE id = $1",
                              attempt_id)
    return None if row is None else _attempt(row)


def op_finish_attempt(a: Attempt, *, expected: tuple[AttemptStatus, ...],
                      check_after_s: float | None = None) -> Op:
    """Record an attempt's outcome once: CAS on the open statuses, so a racing recovery
    worker and the original request cannot both apply it. ``check_after_s``: the new
    status still waits on the PSP or the customer; recovery looks again then."""
    return {"op": "finish_attempt", "expected": [s.value for s in expected], "row": {
        "id": a.id, "status": a.status.value, "psp_reference": a.psp_reference,
        "error": a.error, "check_after_s": check_after_s}}


async def claim_due_attempts(conn: Conn, *, lease_s: float, limit: int) -> list[Attempt]:
    """Attempts whose next look is due, leased to this caller for ``lease_s`` (moved out
    of everyone else's sight until then; SKIP LOCKED lets replicas share the backlog).
    The lease must cover the work: a caller that dies hands them on when it ends."""
    rows = await conn.fetch(
        f"UPDATE attempts SET next_check_at = now() + make_interval(secs => $1) WHERE id IN ("
        " SELECT id FROM attempts WHERE next_check_at <= now()"
        " ORDER BY next_check_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
        f" RETURNING {_ATTEMPT_COLUMNS}", lease_s, limit)
    return [_attempt(r) for r in rows]


async def reschedule_attempt(conn: Conn, attempt: Attempt, *, delay_s: float | None,
                             count_try: bool, give_up_after: int | None = None,
                             note: str | None = None) -> AttemptStatus | None:
    """After a look that settled nothing: look again in ``delay_s`` (None: never). With
    ``count_try`` the look counts; an open or pending attempt past ``give_up_after``
    tries becomes needs_attention (its error says why). Only if the attempt is still as
    the look found it (status and tries): a finisher that recorded it meanwhile set its
    own next look, which must not be overwritten. Returns the status it has now, None if
    it changed meanwhile."""
    row = await conn.fetchrow(
        "UPDATE attempts SET tries = tries + $2::int,"
        " status = CASE WHEN $3::int IS NOT NULL AND tries + $2::int >= $3::int"
        "   AND status IN ('started', 'unknown', 'pending') THEN 'needs_attention'"
        "   ELSE status END,"
        " error = CASE WHEN $3::int IS NOT NULL AND tries + $2::int >= $3::int"
        "   AND status IN ('started', 'unknown', 'pending')"
        "   THEN jsonb_build_object('code', 'recovery_exhausted', 'message', $4::text,"
        "     'was', status) ELSE error END,"
        " next_check_at = now() + make_interval(secs => $5::double precision),"
        " updated_at = now()"
        " WHERE id = $1 AND status = $6 AND tries = $7 AND next_check_at IS NOT NULL"
        " RETURNING status",
        attempt.id, 1 if count_try else 0, give_up_after, note or "", delay_s,
        attempt.status.value, attempt.tries)
    return None if row is None else AttemptStatus(row["status"])


async def flag_attempt(conn: Conn, attempt_id: str, *, note: str, recheck_s: float) -> None:
    """An outcome kassa cannot record as it is: needs_attention, with the reason."""
    await conn.execute(
        "UPDATE attempts SET status = 'needs_attention', updated_at = now(),"
        " error = jsonb_build_object('code', 'unrecordable_outcome', 'message', $2::text,"
        "   'was', status),"
        " next_check_at = now() + make_interval(secs => $3::double precision)"
        " WHERE id = $1 AND status IN ('started', 'unknown', 'pending', 'requires_action',"
        " 'needs_attention')", attempt_id, note, recheck_s)


async def list_stuck_attempts(conn: Conn, *, limit: int = 100) -> list[Attempt]:
    rows = await conn.fetch(
        f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE status = 'needs_attention'"
        " ORDER BY updated_at LIMIT $1", limit)
    return [_attempt(r) for r in rows]


async def list_waiting_attempts(conn: Conn, *, limit: int = 100) -> list[Attempt]:
    """Attempts whose outcome is not known yet (open, pending, 3-D Secure, stuck)."""
    rows = await conn.fetch(
        f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE status IN ('started', 'unknown',"
        " 'pending', 'requires_action', 'needs_attention') ORDER BY updated_at LIMIT $1",
        limit)
    return [_attempt(r) for r in rows]


async def count_stuck_attempts(conn: Conn) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM attempts WHERE status = 'needs_attention'"))


def op_mark_attempt_unknown(attempt_id: str) -> Op:
    return {"op": "mark_attempt_unknown", "row": {"id": attempt_id}}


# ---------------------------------------------------------------- refunds

_REFUND_COLUMNS = ("id, merchant_id, payment_intent_id, amount, currency, status, reason,"
                   " metadata, failure_reason, psp_reference, attempt_id, created, version")


def _refund(row: asyncpg.Record) -> Refund:
    return Refund(
        id=row["id"], merchant_id=row["merchant_id"], payment_intent_id=row["payment_intent_id"],
        amount=Money(row["amount"], row["currency"]), status=RefundStatus(row["status"]),
        created=row["created"], reason=row["reason"], metadata=row["metadata"],
        failure_reason=row["failure_reason"], psp_reference=row["psp_reference"],
        attempt_id=row["attempt_id"], version=row["version"])


def op_insert_refund(r: Refund) -> Op:
    return {"op": "insert_refund", "row": {
        "id": r.id, "merchant_id": r.merchant_id, "payment_intent_id": r.payment_intent_id,
        "amount": r.amount.minor, "currency": r.amount.currency, "status": r.status.value,
        "reason": r.reason, "metadata": r.metadata, "attempt_id": r.attempt_id,
        "created": r.created}}


async def get_refund(conn: Conn, *, merchant_id: str | None, refund_id: str) -> Refund | None:
    if merchant_id is None:
        row = await conn.fetchrow(f"SELECT {_REFUND_COLUMNS} FROM refunds WHERE id = $1",
                                  refund_id)
    else:
        row = await conn.fetchrow(
            f"SELECT {_REFUND_COLUMNS} FROM refunds WHERE id = $1 AND merchant_id = $2",
            refund_id, merchant_id)
    return None if row is None else _refund(row)


def op_update_refund(r: Refund) -> Op:
    op = {"op": "update_refund", "row": {
        "id": r.id, "version": r.version, "status": r.status.value,
        "failure_reason": r.failure_reason, "psp_reference": r.psp_reference,
        "metadata": r.metadata}}
    r.version += 1
    return op


async def list_refunds(conn: Conn, *, merchant_id: str, limit: int, starting_after: str | None,
                       ending_before: str | None, payment_intent: str | None,
                       charge: str | None = None, created: Bounds | None = None
                       ) -> tuple[list[Refund], bool]:
    conditions, args = [], []
    if payment_intent:
        args.append(payment_intent)
        conditions.append(f"payment_intent_id = ${len(args) + 2}")
    if charge:  # a refund is of the payment's succeeded charge, its latest
        args.append(charge)
        conditions.append("payment_intent_id = (SELECT id FROM payment_intents"
                          f" WHERE latest_charge = ${len(args) + 2} AND merchant_id = $1)")
    rows, more = await list_objects(
        conn, table="refunds", columns=_REFUND_COLUMNS, merchant_id=merchant_id, limit=limit,
        starting_after=starting_after, ending_before=ending_before,
        where=" AND ".join(conditions), args=tuple(args), created=created)
    return [_refund(r) for r in rows], more


# ---------------------------------------------------------------- ledger


def op_post_ledger(posting: Posting, *, merchant_id: str, source_id: str,
                   hold_ref: str | None = None) -> Op:
    """One balanced transaction (header + entries); the database re-checks balance at
    COMMIT and refuses a second posting for the same source."""
    return {"op": "post_ledger", "row": {
        "kind": posting.kind.value, "merchant_id": merchant_id, "source_id": source_id,
        "hold_ref": hold_ref,
        "entries": [{"account": e.account, "currency": e.amount.currency,
                     "layer": e.layer.value, "amount": e.amount.minor}
                    for e in posting.entries]}}


async def account_balances(conn: Conn, accounts: list[str]) -> list[asyncpg.Record]:
    """Balance per (account, currency, layer) = sum of its entries (index-only scan)."""
    return await conn.fetch(
        "SELECT account, currency, layer, sum(amount)::bigint AS total FROM ledger_entries"
        " WHERE account = ANY($1::text[]) GROUP BY account, currency, layer", accounts)


async def unbalanced_transactions(conn: Conn, limit: int = 100) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT transaction_id, currency, layer, sum(amount)::bigint AS total"
        " FROM ledger_entries GROUP BY transaction_id, currency, layer"
        " HAVING sum(amount) <> 0 ORDER BY transaction_id LIMIT $1", limit)


async def transactions_with_too_few_entries(conn: Conn, limit: int = 100) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT t.id, count(e.id) AS n FROM ledger_transactions t"
        " LEFT JOIN ledger_entries e ON e.transaction_id = t.id"
        " GROUP BY t.id HAVING count(e.id) < 2 ORDER BY t.id LIMIT $1", limit)


async def trial_balance(conn: Conn) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT currency, layer, sum(amount)::bigint AS total FROM ledger_entries"
        " GROUP BY currency, layer ORDER BY currency, layer")


# ---------------------------------------------------------------- balance transactions

_BT_COLUMNS = ("id, merchant_id, amount, fee, net, currency, type, source, status,"
               " available_on, created, description")


def op_insert_balance_transaction(*, bt_id: str, merchant_id: str, amount: int, fee: int,
                                  currency: str, type: str, source: str, status: str,
                                  available_on: int | None, created: int,
                                  description: str | None) -> Op:
    """Must follow the op_post_ledger of the ledger transaction it describes.
    ``available_on`` None: 00:00 UTC of the day the merchant's settlement delay (its payout
    schedule's ``delay_days``, default 2) after ``created`` — domain/settlement.py's rule."""
    return {"op": "insert_balance_transaction", "row": {
        "id": bt_id, "merchant_id": merchant_id, "amount": amount, "fee": fee,
        "currency": currency, "type": type, "source": source, "status": status,
        "available_on": available_on, "created": created, "description": description}}


async def list_balance_transactions(conn: Conn, *, merchant_id: str, limit: int,
                                    starting_after: str | None, ending_before: str | None,
                                    type: str | None, source: str | None = None,
                                    currency: str | None = None, created: Bounds | None = None,
                                    payout: str | None = None
                                    ) -> tuple[list[asyncpg.Record], bool]:
    conditions, args = [], []
    for column, value in (("type", type), ("source", source), ("currency", currency),
                          ("payout", payout)):
        if value is not None:
            args.append(value)
            conditions.append(f"{column} = ${len(args) + 2}")
    return await list_objects(
        conn, table="balance_transactions", columns=_BT_COLUMNS, merchant_id=merchant_id,
        limit=limit, starting_after=starting_after, ending_before=ending_before,
        where=" AND ".join(conditions), args=tuple(args), created=created)


async def get_balance_transaction(conn: Conn, *, merchant_id: str, bt_id: str
                                  ) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_BT_COLUMNS} FROM balance_transactions WHERE id = $1 AND merchant_id = $2",
        bt_id, merchant_id)


async def claim_due_balance_transactions(conn: asyncpg.Connection, *, now: int, limit: int
                                         ) -> list[asyncpg.Record]:
    """Pending balance transactions whose funds are due; locked for this transaction."""
    return await conn.fetch(
        "UPDATE balance_transactions SET status = 'available' WHERE id IN ("
        " SELECT id FROM balance_transactions WHERE status = 'pending' AND available_on <= $1"
        " ORDER BY available_on LIMIT $2 FOR UPDATE SKIP LOCKED)"
        " RETURNING id, merchant_id, currency, net", now, limit)


# ---------------------------------------------------------------- events


def op_insert_events(rows: list[dict[str, Any]]) -> Op:
    """rows: {id, merchant_id, type, object_id, data (the event), created}."""
    return {"op": "insert_events", "rows": rows}


async def get_event(conn: Conn, *, merchant_id: str, event_id: str) -> dict[str, Any] | None:
    data: dict[str, Any] | None = await conn.fetchval(
        "SELECT data FROM events WHERE id = $1 AND merchant_id = $2", event_id, merchant_id)
    return data


async def list_events(conn: Conn, *, merchant_id: str, limit: int, starting_after: str | None,
                      ending_before: str | None, type: str | None,
                      types: list[str] | None = None, created: Bounds | None = None
                      ) -> tuple[list[dict[str, Any]], bool]:
    where, args = "", ()
    if type:
        if type.endswith(".*"):
            where, args = "type LIKE $3", (type[:-1] + "%",)
        else:
            where, args = "type = $3", (type,)
    elif types:
        where, args = "type = ANY($3::text[])", (types,)
    rows, more = await list_objects(conn, table="events", columns="data",
                                    merchant_id=merchant_id, limit=limit,
                                    starting_after=starting_after, ending_before=ending_before,
                                    where=where, args=args, created=created)
    return [r["data"] for r in rows], more


# ---------------------------------------------------------------- verification queries


async def payment_ledger_mismatches(conn: Conn, limit: int = 100) -> list[asyncpg.Record]:
    """Payments whose captured amount differs from what the ledger debited the PSP."""
    return await conn.fetch(
        "WITH captured AS ("
        " SELECT t.source_id AS id, sum(e.amount)::bigint AS captured"
        " FROM ledger_transactions t JOIN ledger_entries e ON e.transaction_id = t.id"
        " WHERE t.kind = 'capture' AND e.layer = 'posted' AND e.account LIKE 'psp:%'"
        " GROUP BY t.source_id)"
        " SELECT p.id, p.amount_received, coalesce(c.captured, 0) AS captured"
        " FROM payment_intents p LEFT JOIN captured c ON c.id = p.id"
        " WHERE p.amount_received <> coalesce(c.captured, 0) LIMIT $1", limit)


async def refund_ledger_mismatches(conn: Conn, limit: int = 100) -> list[asyncpg.Record]:
    return await conn.fetch(
        "WITH posted AS ("
        " SELECT r.payment_intent_id AS id, sum(-e.amount)::bigint AS ledger_refunded"
        " FROM refunds r JOIN ledger_transactions t ON t.source_id = r.id"
        " AND t.kind IN ('refund', 'refund_reversal')"
        " JOIN ledger_entries e ON e.transaction_id = t.id AND e.account LIKE 'psp:%'"
        " GROUP BY r.payment_intent_id),"
        " succeeded AS (SELECT payment_intent_id AS id, sum(amount)::bigint AS refunded"
        " FROM refunds WHERE status = 'succeeded' GROUP BY payment_intent_id)"
        " SELECT coalesce(s.id, p.id) AS id, coalesce(s.refunded, 0) AS refunded,"
        " coalesce(p.ledger_refunded, 0) AS ledger_refunded"
        " FROM succeeded s FULL JOIN posted p ON p.id = s.id"
        " WHERE coalesce(s.refunded, 0) <> coalesce(p.ledger_refunded, 0) LIMIT $1", limit)


async def merchant_balance_mismatches(conn: Conn, limit: int = 100) -> list[asyncpg.Record]:
    """Sum of balance transactions' net must equal the merchant's posted liabilities."""
    return await conn.fetch(
        "WITH bt AS (SELECT merchant_id, currency, sum(net)::bigint AS bt_net"
        " FROM balance_transactions GROUP BY 1, 2),"
        " led AS (SELECT split_part(account, ':', 2) AS merchant_id, currency,"
        " -sum(amount)::bigint AS ledger FROM ledger_entries"
        " WHERE account LIKE 'merchant:%' AND layer = 'posted'"
        # a payout on its way is no longer in the balance (payouts_repository checks it)
        " AND account NOT LIKE 'merchant:%:payouts_in_transit' GROUP BY 1, 2)"
        " SELECT coalesce(bt.merchant_id, led.merchant_id) AS merchant_id,"
        " coalesce(bt.currency, led.currency) AS currency, coalesce(bt_net, 0) AS bt_net,"
        " coalesce(ledger, 0) AS ledger FROM bt FULL JOIN led"
        " ON bt.merchant_id = led.merchant_id AND bt.currency = led.currency"
        " WHERE coalesce(bt_net, 0) <> coalesce(ledger, 0) LIMIT $1", limit)


async def unresolved_or_double_holds(conn: Conn, limit: int = 100) -> list[asyncpg.Record]:
    """Holds must be resolved at most once, and holds of finished payments must be resolved."""
    return await conn.fetch(
        "SELECT h.source_id AS hold_ref,"
        " CASE WHEN count(r.id) > 1 THEN 'resolved ' || count(r.id) || ' times'"
        " ELSE 'never resolved although the payment is ' || max(p.status) END AS problem"
        " FROM ledger_transactions h"
        " JOIN attempts a ON a.id = h.source_id"
        " JOIN payment_intents p ON p.id = a.payment_intent_id"
        " LEFT JOIN ledger_transactions r ON r.hold_ref = h.source_id"
        " AND r.kind IN ('capture', 'authorization_release')"
        " WHERE h.kind = 'authorization_hold'"
        " GROUP BY h.source_id"
        " HAVING count(r.id) > 1 OR (count(r.id) = 0"
        " AND max(p.status) IN ('succeeded', 'canceled')) LIMIT $1", limit)


async def ledger_counts(conn: Conn) -> dict[str, int]:
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM ledger_transactions) AS transactions,"
        " (SELECT count(*) FROM ledger_entries) AS entries,"
        " (SELECT count(*) FROM payment_intents) AS payments")
    return dict(row) if row else {}


async def payment_charged_back(conn: Conn, payment_id: str) -> bool:
    """A chargeback (not an inquiry) is open or lost on this payment: the cardholder's
    bank took the money back, so refunding it too would pay them twice."""
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM disputes WHERE payment_intent_id = $1"
        " AND status IN ('needs_response', 'under_review', 'lost'))", payment_id))
