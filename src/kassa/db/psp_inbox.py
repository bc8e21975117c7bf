"""Named SQL for the PSP webhook inbox and per-object event ordering.

A low-volume path: the statements run inside the caller's explicit transaction
(``await uow.connection()``) rather than as kassa_apply operations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from kassa.db.pool import Conn
from kassa.domain.disputes import DisputeStatus
from kassa.domain.money import Money
from kassa.psp.base import Outcome, PSPDispute, PSPEvent, PSPEventType


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
