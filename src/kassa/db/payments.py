"""Named SQL for payment intents and their PSP attempts (reads, search, and the attempt
queue recovery works from; the writes are ops of db/ops.py). Scoped by merchant where an
object belongs to one."""

from __future__ import annotations

from kassa.db import search
from kassa.db.pagination import fetch_page
from kassa.db.pool import Conn
from kassa.db.rows import ATTEMPT_COLUMNS, PI_COLUMNS, attempt_from_row, payment_from_row
from kassa.domain.ledger import Entry, Layer
from kassa.domain.lists import Bounds
from kassa.domain.money import Money
from kassa.domain.payments import Attempt, AttemptStatus, PaymentIntent
from kassa.domain.search import FieldKind
from kassa.domain.search import parse as parse_search


async def get_payment(conn: Conn, *, merchant_id: str, payment_id: str) -> PaymentIntent | None:
    row = await conn.fetchrow(
        f"SELECT {PI_COLUMNS} FROM payment_intents WHERE id = $1 AND merchant_id = $2",
        payment_id, merchant_id)
    return None if row is None else payment_from_row(row)


async def get_payment_unscoped(conn: Conn, payment_id: str) -> PaymentIntent | None:
    """For workers acting on behalf of the platform (recovery); never for API reads."""
    row = await conn.fetchrow(f"SELECT {PI_COLUMNS} FROM payment_intents WHERE id = $1",
                              payment_id)
    return None if row is None else payment_from_row(row)


async def lock_payment_unscoped(conn: Conn, payment_id: str
                                ) -> PaymentIntent | None:
    """The payment, locked for the caller's transaction (FOR UPDATE): a chargeback's share
    lock (db/disputes.lock_disputable) and this wait for each other, so what one decides
    from the payment's amounts the other sees committed."""
    row = await conn.fetchrow(
        f"SELECT {PI_COLUMNS} FROM payment_intents WHERE id = $1 FOR UPDATE", payment_id)
    return None if row is None else payment_from_row(row)


async def list_payments(conn: Conn, *, merchant_id: str, limit: int, starting_after: str | None,
                        ending_before: str | None, created: Bounds | None = None
                        ) -> tuple[list[PaymentIntent], bool]:
    rows, more = await fetch_page(
        conn, select=f"SELECT {PI_COLUMNS} FROM payment_intents", table="payment_intents",
        merchant_id=merchant_id, limit=limit, starting_after=starting_after,
        ending_before=ending_before, bounds=[("created", created)])
    return [payment_from_row(r) for r in rows], more


PAYMENTS_SEARCH = search.Searchable(
    table="payment_intents", columns=PI_COLUMNS,
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
    return [payment_from_row(r) for r in rows], next_page


async def get_attempt(conn: Conn, attempt_id: str) -> Attempt | None:
    row = await conn.fetchrow(f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE id = $1",
                              attempt_id)
    return None if row is None else attempt_from_row(row)


async def get_attempt_by_operation_reference(conn: Conn, *, psp: str,
                                             operation_reference: str) -> Attempt | None:
    """The modification attempt the PSP knows by its own reference (index
    attempts_operation_reference): how its notification finds it."""
    row = await conn.fetchrow(
        f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE psp = $1 AND operation_reference = $2",
        psp, operation_reference)
    return None if row is None else attempt_from_row(row)


async def capture_entries(conn: Conn, *, hold_ref: str | None,
                          payment_id: str) -> tuple[Entry, ...]:
    """The entries of the capture that resolved ``hold_ref`` (a manual capture; the
    unique index on a resolved hold finds it), or of the payment's capture at once
    (``hold_ref`` None): what a reversal mirrors."""
    if hold_ref is not None:
        where, arg = "t.kind = 'capture' AND t.hold_ref = $1", hold_ref
    else:
        where, arg = "t.kind = 'capture' AND t.source_id = $1 AND t.hold_ref IS NULL", \
            payment_id
    rows = await conn.fetch(
        "SELECT e.account, e.currency, e.layer, e.amount FROM ledger_transactions t"
        f" JOIN ledger_entries e ON e.transaction_id = t.id WHERE {where} ORDER BY e.id", arg)
    return tuple(Entry(r["account"], Money(r["amount"], r["currency"]), Layer(r["layer"]))
                 for r in rows)


async def claim_due_attempts(conn: Conn, *, lease_s: float, limit: int) -> list[Attempt]:
    """Attempts whose next look is due, leased to this caller for ``lease_s`` (moved out
    of everyone else's sight until then; SKIP LOCKED lets replicas share the backlog).
    The lease must cover the work: a caller that dies hands them on when it ends."""
    rows = await conn.fetch(
        f"UPDATE attempts SET next_check_at = now() + make_interval(secs => $1) WHERE id IN ("
        " SELECT id FROM attempts WHERE next_check_at <= now()"
        " ORDER BY next_check_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
        f" RETURNING {ATTEMPT_COLUMNS}", lease_s, limit)
    return [attempt_from_row(r) for r in rows]


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


async def flag_attempt(conn: Conn, attempt_id: str, *, note: str, recheck_s: float,
                       code: str = "unrecordable_outcome") -> None:
    """An outcome kassa cannot record as it is: needs_attention, with the reason. ``was``
    keeps the status it waited in before any flag (pending: the PSP had accepted it)."""
    await conn.execute(
        "UPDATE attempts SET status = 'needs_attention', updated_at = now(),"
        " error = jsonb_build_object('code', $4::text, 'message', $2::text,"
        "   'was', CASE WHEN status = 'needs_attention'"
        "     THEN coalesce(error->>'was', status) ELSE status END),"
        " next_check_at = now() + make_interval(secs => $3::double precision)"
        " WHERE id = $1 AND status IN ('started', 'unknown', 'pending', 'requires_action',"
        " 'needs_attention')", attempt_id, note, recheck_s, code)


async def list_stuck_attempts(conn: Conn, *, limit: int = 100) -> list[Attempt]:
    rows = await conn.fetch(
        f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE status = 'needs_attention'"
        " ORDER BY updated_at LIMIT $1", limit)
    return [attempt_from_row(r) for r in rows]


async def list_waiting_attempts(conn: Conn, *, limit: int = 100) -> list[Attempt]:
    """Attempts whose outcome is not known yet (open, pending, 3-D Secure, stuck)."""
    rows = await conn.fetch(
        f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE status IN ('started', 'unknown',"
        " 'pending', 'requires_action', 'needs_attention') ORDER BY updated_at LIMIT $1",
        limit)
    return [attempt_from_row(r) for r in rows]


async def count_stuck_attempts(conn: Conn) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM attempts WHERE status = 'needs_attention'"))
