"""Named SQL for the PSP webhook inbox, per-object event ordering and disputes.

These are low-volume paths, so they run as separate statements inside the caller's
explicit transaction (``await uow.connection()``) rather than as kassa_apply operations;
ledger postings, balance transactions, payment/refund updates and outbox events still go
through the unit of work and commit in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import asyncpg

from kassa.db.filters import bounds_sql
from kassa.domain.disputes import Dispute, DisputeStatus
from kassa.domain.errors import ConcurrentModification
from kassa.domain.lists import Bounds
from kassa.domain.money import Money
from kassa.psp.base import Outcome, PSPDispute, PSPEvent, PSPEventType

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool

# ---------------------------------------------------------------- event (de)serialisation


def _money(m: Money | None) -> dict[str, Any] | None:
    return None if m is None else {"minor": m.minor, "currency": m.currency}


def _from_money(d: dict[str, Any] | None) -> Money | None:
    return None if d is None else Money(int(d["minor"]), str(d["currency"]))


def event_to_json(e: PSPEvent) -> dict[str, Any]:
    dispute = None
    if e.dispute is not None:
        dispute = {"psp_dispute_id": e.dispute.psp_dispute_id,
                   "status": e.dispute.status.value, "amount": _money(e.dispute.amount),
                   "reason": e.dispute.reason, "evidence_due_by": e.dispute.evidence_due_by,
                   "created": e.dispute.created}
    return {"psp": e.psp, "event_id": e.event_id, "type": e.type.value,
            "object_ref": e.object_ref, "sequence": e.sequence, "created": e.created,
            "psp_reference": e.psp_reference, "reference": e.reference,
            "operation_reference": e.operation_reference, "amount": _money(e.amount),
            "failure_code": e.failure_code, "message": e.message, "dispute": dispute,
            "outcome": None if e.outcome is None else e.outcome.value,
            "decline_code": e.decline_code}


def event_from_json(d: dict[str, Any]) -> PSPEvent:
    dispute = None
    if d.get("dispute") is not None:
        x = d["dispute"]
        amount = _from_money(x["amount"])
        assert amount is not None
        dispute = PSPDispute(psp_dispute_id=x["psp_dispute_id"],
                             status=DisputeStatus(x["status"]), amount=amount,
                             reason=x["reason"], evidence_due_by=x.get("evidence_due_by"),
                             created=x.get("created"))
    return PSPEvent(psp=d["psp"], event_id=d["event_id"], type=PSPEventType(d["type"]),
                    object_ref=d["object_ref"], sequence=int(d["sequence"]),
                    created=int(d["created"]), psp_reference=d["psp_reference"],
                    reference=d.get("reference"),
                    operation_reference=d.get("operation_reference"),
                    amount=_from_money(d.get("amount")), failure_code=d.get("failure_code"),
                    message=d.get("message"), dispute=dispute,
                    outcome=None if d.get("outcome") is None else Outcome(d["outcome"]),
                    decline_code=d.get("decline_code"))


# ---------------------------------------------------------------- inbox


async def insert_events(conn: Conn, events: Sequence[PSPEvent]) -> int:
    """Store events not seen before; returns how many were new (the rest are duplicates)."""
    if not events:
        return 0
    rows = [{"psp": e.psp, "psp_event_id": e.event_id, "type": e.type.value,
             "object_ref": e.object_ref, "sequence": e.sequence, "event": event_to_json(e)}
            for e in events]
    inserted = await conn.fetch(
        "INSERT INTO psp_events (psp, psp_event_id, type, object_ref, sequence, event)"
        " SELECT psp, psp_event_id, type, object_ref, sequence, event"
        " FROM jsonb_to_recordset($1::jsonb) AS e(psp text, psp_event_id text, type text,"
        " object_ref text, sequence bigint, event jsonb)"
        " ON CONFLICT (psp, psp_event_id) DO NOTHING RETURNING id", rows)
    return len(inserted)


@dataclass(frozen=True, slots=True)
class InboxEvent:
    id: int
    attempts: int
    event: PSPEvent


async def claim_next_event(conn: asyncpg.Connection) -> InboxEvent | None:
    """The oldest due pending event, locked for the caller's transaction; rows another
    worker holds are skipped, so any number of workers share the backlog."""
    row = await conn.fetchrow(
        "SELECT id, attempts, event FROM psp_events"
        " WHERE status = 'pending' AND available_at <= now()"
        " ORDER BY available_at, id LIMIT 1 FOR UPDATE SKIP LOCKED")
    if row is None:
        return None
    return InboxEvent(row["id"], row["attempts"], event_from_json(row["event"]))


async def lock_object_version(conn: asyncpg.Connection, *, psp: str, object_ref: str) -> int:
    """The highest sequence applied for this PSP object (0: none), with its row locked
    until the caller's transaction ends (one statement: the upsert takes the lock)."""
    value: int = await conn.fetchval(
        "INSERT INTO psp_object_versions AS v (psp, object_ref, sequence) VALUES ($1, $2, 0)"
        " ON CONFLICT (psp, object_ref) DO UPDATE SET sequence = v.sequence"
        " RETURNING sequence", psp, object_ref)
    return value


async def set_object_version(conn: asyncpg.Connection, *, psp: str, object_ref: str,
                             sequence: int) -> None:
    await conn.execute(
        "UPDATE psp_object_versions SET sequence = greatest(sequence, $3), updated_at = now()"
        " WHERE psp = $1 AND object_ref = $2", psp, object_ref, sequence)


async def finish_event(conn: Conn, *, inbox_id: int, status: str, result: str | None) -> None:
    """applied | ignored | failed: the event is done with."""
    await conn.execute(
        "UPDATE psp_events SET status = $2, result = $3, processed_at = now(),"
        " attempts = attempts + 1 WHERE id = $1 AND status = 'pending'",
        inbox_id, status, result)


async def defer_event(conn: Conn, *, inbox_id: int, delay_s: float, result: str,
                      max_attempts: int) -> str:
    """Try again after ``delay_s``; after ``max_attempts`` the event is ``failed`` (kept for
    an operator). Returns the new status."""
    status: str = await conn.fetchval(
        "UPDATE psp_events SET attempts = attempts + 1, result = $3,"
        " available_at = now() + make_interval(secs => $2),"
        " status = CASE WHEN attempts + 1 >= $4 THEN 'failed' ELSE 'pending' END,"
        " processed_at = CASE WHEN attempts + 1 >= $4 THEN now() END"
        " WHERE id = $1 AND status = 'pending' RETURNING status",
        inbox_id, delay_s, result[:1000], max_attempts)
    return status or "gone"


async def inbox_counts(conn: Conn) -> dict[str, int]:
    rows = await conn.fetch("SELECT status, count(*) AS n FROM psp_events GROUP BY status")
    return {r["status"]: r["n"] for r in rows}


async def get_inbox_event(conn: Conn, *, psp: str, psp_event_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, status, attempts, result, type, object_ref, sequence FROM psp_events"
        " WHERE psp = $1 AND psp_event_id = $2", psp, psp_event_id)


# ---------------------------------------------------------------- disputes

_DISPUTE_COLUMNS = (
    "id, merchant_id, payment_intent_id, charge, psp, psp_dispute_id, amount, fee, currency,"
    " status, reason, evidence, evidence_due_by, submission_count, metadata,"
    " withdrawal_balance_transaction, reinstatement_balance_transaction, created, version,"
    " amount_withdrawn"
)


def _dispute(row: asyncpg.Record) -> Dispute:
    return Dispute(
        id=row["id"], merchant_id=row["merchant_id"],
        payment_intent_id=row["payment_intent_id"], charge=row["charge"], psp=row["psp"],
        psp_dispute_id=row["psp_dispute_id"], amount=Money(row["amount"], row["currency"]),
        fee=Money(row["fee"], row["currency"]), status=DisputeStatus(row["status"]),
        reason=row["reason"], created=row["created"], evidence=row["evidence"],
        evidence_due_by=row["evidence_due_by"], submission_count=row["submission_count"],
        metadata=row["metadata"],
        withdrawal_balance_transaction=row["withdrawal_balance_transaction"],
        reinstatement_balance_transaction=row["reinstatement_balance_transaction"],
        amount_withdrawn=None if row["amount_withdrawn"] is None
        else Money(row["amount_withdrawn"], row["currency"]),
        version=row["version"])


async def get_dispute(conn: Conn, *, merchant_id: str, dispute_id: str) -> Dispute | None:
    row = await conn.fetchrow(
        f"SELECT {_DISPUTE_COLUMNS} FROM disputes WHERE id = $1 AND merchant_id = $2",
        dispute_id, merchant_id)
    return None if row is None else _dispute(row)


async def lock_dispute_by_psp(conn: asyncpg.Connection, *, psp: str, psp_dispute_id: str
                              ) -> Dispute | None:
    """The dispute a PSP event is about, locked for the caller's transaction."""
    row = await conn.fetchrow(
        f"SELECT {_DISPUTE_COLUMNS} FROM disputes WHERE psp = $1 AND psp_dispute_id = $2"
        " FOR UPDATE", psp, psp_dispute_id)
    return None if row is None else _dispute(row)


async def insert_dispute(conn: Conn, d: Dispute) -> None:
    await conn.execute(
        f"INSERT INTO disputes ({_DISPUTE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,"
        " $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
        d.id, d.merchant_id, d.payment_intent_id, d.charge, d.psp, d.psp_dispute_id,
        d.amount.minor, d.fee.minor, d.amount.currency, d.status.value, d.reason, d.evidence,
        d.evidence_due_by, d.submission_count, d.metadata, d.withdrawal_balance_transaction,
        d.reinstatement_balance_transaction, d.created, d.version, _minor(d.amount_withdrawn))


async def update_dispute(conn: Conn, d: Dispute) -> None:
    """Compare-and-swap on the version the caller read; the object takes the next one."""
    status = await conn.execute(
        "UPDATE disputes SET status = $3, evidence = $4, evidence_due_by = $5,"
        " submission_count = $6, metadata = $7, withdrawal_balance_transaction = $8,"
        " reinstatement_balance_transaction = $9, amount_withdrawn = $10,"
        " version = version + 1 WHERE id = $1 AND version = $2",
        d.id, d.version, d.status.value, d.evidence, d.evidence_due_by, d.submission_count,
        d.metadata, d.withdrawal_balance_transaction, d.reinstatement_balance_transaction,
        _minor(d.amount_withdrawn))
    if not status.endswith(" 1"):
        raise ConcurrentModification(f"dispute {d.id} was modified concurrently; retry.")
    d.version += 1


def _minor(m: Money | None) -> int | None:
    return None if m is None else m.minor


async def lock_disputable(conn: asyncpg.Connection, *, payment_id: str) -> Money:
    """What of a payment a chargeback can still take (captured and not refunded, pending
    refunds counted), read under a share lock for the caller's transaction: a refund's
    compare-and-swap on the payment waits for the chargeback to commit."""
    row = await conn.fetchrow(
        "SELECT amount_received - amount_refunded AS disputable, currency"
        " FROM payment_intents WHERE id = $1 FOR SHARE", payment_id)
    if row is None:
        raise LookupError(f"payment {payment_id} of a dispute does not exist")
    return Money(row["disputable"], row["currency"])


async def list_disputes(conn: Conn, *, merchant_id: str, limit: int,
                        starting_after: str | None, ending_before: str | None,
                        payment_intent: str | None = None, charge: str | None = None,
                        created: Bounds | None = None) -> tuple[list[Dispute], bool]:
    """Newest first, cursor-paginated by id like Stripe; returns (disputes, has_more)."""
    params: list[Any] = [merchant_id, limit + 1]
    cond = "merchant_id = $1"
    for column, value in (("payment_intent_id", payment_intent), ("charge", charge)):
        if value is not None:
            params.append(value)
            cond += f" AND {column} = ${len(params)}"
    cond += bounds_sql("created", created, params)
    order = "DESC"
    cursor = starting_after or ending_before
    if cursor is not None:
        params.append(cursor)
        op = "<" if starting_after is not None else ">"
        cond += (f" AND seq {op} (SELECT seq FROM disputes WHERE id = ${len(params)}"
                 " AND merchant_id = $1)")
        order = "DESC" if starting_after is not None else "ASC"
    rows = await conn.fetch(
        f"SELECT {_DISPUTE_COLUMNS} FROM disputes WHERE {cond} ORDER BY seq {order} LIMIT $2",
        *params)
    has_more = len(rows) > limit
    rows = rows[:limit]
    if order == "ASC":
        rows.reverse()
    return [_dispute(r) for r in rows], has_more


async def balance_transactions(conn: Conn, *, merchant_id: str, ids: Sequence[str]
                               ) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT id, merchant_id, amount, fee, net, currency, type, source, status,"
        " available_on, created, description FROM balance_transactions"
        " WHERE id = ANY($1::text[]) AND merchant_id = $2 ORDER BY seq", list(ids), merchant_id)
    return rows


# ---------------------------------------------------------------- verification


async def dispute_ledger_mismatches(conn: Conn, limit: int = 100) -> list[asyncpg.Record]:
    """Disputes whose status and ledger disagree: a chargeback must have taken what it
    withdrew (``amount_withdrawn``, at most the amount) plus the fee from the merchant and
    the withdrawn amount from the PSP receivable exactly once, a won dispute must
    have returned both, and no other dispute posting may exist."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "WITH led AS ("
        " SELECT t.source_id AS id,"
        "  coalesce(sum(e.amount) FILTER (WHERE t.kind = 'dispute'"
        "   AND e.account LIKE 'merchant:%'), 0)::bigint AS withdrawn,"
        "  coalesce(-sum(e.amount) FILTER (WHERE t.kind = 'dispute'"
        "   AND e.account LIKE 'psp:%'), 0)::bigint AS psp_withdrawn,"
        "  coalesce(-sum(e.amount) FILTER (WHERE t.kind = 'dispute_reversal'"
        "   AND e.account LIKE 'merchant:%'), 0)::bigint AS reinstated,"
        "  coalesce(sum(e.amount) FILTER (WHERE t.kind = 'dispute_reversal'"
        "   AND e.account LIKE 'psp:%'), 0)::bigint AS psp_reinstated"
        " FROM ledger_transactions t JOIN ledger_entries e ON e.transaction_id = t.id"
        " WHERE t.kind IN ('dispute', 'dispute_reversal') GROUP BY t.source_id),"
        " expected AS ("
        " SELECT id, status,"
        "  CASE WHEN status IN ('needs_response', 'under_review', 'won', 'lost')"
        "   THEN amount_withdrawn + fee ELSE 0 END AS withdrawn,"
        "  CASE WHEN status IN ('needs_response', 'under_review', 'won', 'lost')"
        "   THEN amount_withdrawn ELSE 0 END AS psp_withdrawn,"
        "  CASE WHEN status = 'won' THEN amount_withdrawn + fee"
        "   ELSE 0 END AS reinstated,"
        "  CASE WHEN status = 'won' THEN amount_withdrawn ELSE 0 END"
        "   AS psp_reinstated"
        " FROM disputes)"
        " SELECT coalesce(x.id, led.id) AS id, x.status,"
        "  coalesce(x.withdrawn, 0) AS expected_withdrawn, coalesce(led.withdrawn, 0) AS withdrawn,"
        "  coalesce(x.reinstated, 0) AS expected_reinstated,"
        "  coalesce(led.reinstated, 0) AS reinstated"
        " FROM expected x FULL JOIN led ON led.id = x.id"
        " WHERE coalesce(x.withdrawn, 0) <> coalesce(led.withdrawn, 0)"
        "  OR coalesce(x.psp_withdrawn, 0) <> coalesce(led.psp_withdrawn, 0)"
        "  OR coalesce(x.reinstated, 0) <> coalesce(led.reinstated, 0)"
        "  OR coalesce(x.psp_reinstated, 0) <> coalesce(led.psp_reinstated, 0)"
        " LIMIT $1", limit)
    return rows
