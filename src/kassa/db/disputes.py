"""Named SQL for disputes.

A low-volume path: the statements run inside the caller's explicit transaction
(``await uow.connection()``) rather than as kassa_apply operations; ledger postings, balance
transactions, payment updates and outbox events still go through the unit of work and
commit in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from kassa.db.pagination import fetch_page
from kassa.db.pool import Conn
from kassa.domain.disputes import Dispute, DisputeStatus
from kassa.domain.errors import ConcurrentModification
from kassa.domain.lists import Bounds
from kassa.domain.money import Money


async def payment_charged_back(conn: Conn, payment_id: str) -> bool:
    """A chargeback (not an inquiry) is open or lost on this payment: the cardholder's
    bank took the money back, so refunding it too would pay them twice."""
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM disputes WHERE payment_intent_id = $1"
        " AND status IN ('needs_response', 'under_review', 'lost'))", payment_id))


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


async def withdrawal_taken(conn: Conn, *, dispute_id: str, merchant_account: str
                           ) -> int | None:
    """What a chargeback's withdrawal posting took from the merchant, fee included (None:
    none is posted)."""
    value = await conn.fetchval(
        "SELECT sum(e.amount)::bigint FROM ledger_transactions t JOIN ledger_entries e"
        " ON e.transaction_id = t.id WHERE t.kind = 'dispute' AND t.source_id = $1"
        " AND e.account = $2", dispute_id, merchant_account)
    return None if value is None else int(value)


async def list_disputes(conn: Conn, *, merchant_id: str, limit: int,
                        starting_after: str | None, ending_before: str | None,
                        payment_intent: str | None = None, charge: str | None = None,
                        created: Bounds | None = None) -> tuple[list[Dispute], bool]:
    """Newest first, cursor-paginated by id like Stripe; returns (disputes, has_more)."""
    rows, more = await fetch_page(
        conn, select=f"SELECT {_DISPUTE_COLUMNS} FROM disputes", table="disputes",
        merchant_id=merchant_id, limit=limit, starting_after=starting_after,
        ending_before=ending_before,
        filters=[(f"{column} = {{}}", value) for column, value in (
            ("payment_intent_id", payment_intent), ("charge", charge)) if value is not None],
        bounds=[("created", created)])
    return [_dispute(r) for r in rows], more


async def balance_transactions(conn: Conn, *, merchant_id: str, ids: Sequence[str]
                               ) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT id, merchant_id, amount, fee, net, currency, type, source, status,"
        " available_on, created, description, exchange_rate FROM balance_transactions"
        " WHERE id = ANY($1::text[]) AND merchant_id = $2 ORDER BY seq", list(ids), merchant_id)
    return rows
