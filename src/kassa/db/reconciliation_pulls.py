"""Named SQL for the daily pull of settlement reports (migration reconcile_daily_pulls): one
row per PSP account and report day in ``reconciliation_pulls``, claimed by one worker at a
time under a lease, marked imported by the run that imported the day's file (in the
import's own transaction: db/reconciliation.py, services/reconciliation.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import asyncpg

from kassa.db.pool import Conn


@dataclass(frozen=True, slots=True)
class PullClaim:
    """A worker's claim on one account's report day: valid while the row still says it is
    this worker's ``tries``-th claim (a worker whose lease ran out has lost it)."""

    psp: str
    day: date
    worker: str
    tries: int


async def claim_pull(conn: Conn, *, psp: str, day: date, worker: str, now: int,
                     lease_until: int) -> PullClaim | None:
    """Claim the day, or None: it is imported, another worker holds it, or its last failure
    is still waiting for its retry time. Two workers racing for a new day: the primary key
    lets one insert; the other's ON CONFLICT re-checks the committed row and gets nothing."""
    tries = await conn.fetchval(
        "INSERT INTO reconciliation_pulls (psp, report_date, status, claimed_by, lease_until,"
        " created) VALUES ($1, $2, 'claimed', $3, $5, $4)"
        " ON CONFLICT (psp, report_date) DO UPDATE SET status = 'claimed',"
        " claimed_by = EXCLUDED.claimed_by, lease_until = EXCLUDED.lease_until,"
        " tries = reconciliation_pulls.tries + 1, retry_at = NULL, failure = NULL"
        " WHERE (reconciliation_pulls.status = 'failed' AND reconciliation_pulls.retry_at <= $4)"
        " OR (reconciliation_pulls.status = 'claimed' AND reconciliation_pulls.lease_until < $4)"
        " RETURNING tries", psp, day, worker, now, lease_until)
    return None if tries is None else PullClaim(psp, day, worker, tries)


async def renew_pull(conn: Conn, claim: PullClaim, *, lease_until: int) -> bool:
    """Extend the claim's lease (the import's heartbeat); False if it is no longer this
    worker's claim (taken over, or already marked imported or failed)."""
    renewed = await conn.fetchval(
        "UPDATE reconciliation_pulls SET lease_until = greatest(lease_until, $5)"
        " WHERE psp = $1 AND report_date = $2 AND status = 'claimed' AND claimed_by = $3"
        " AND tries = $4 RETURNING true",
        claim.psp, claim.day, claim.worker, claim.tries, lease_until)
    return bool(renewed)


async def complete_pull(conn: Conn, claim: PullClaim, *, run_id: str, now: int) -> bool:
    """Mark the day imported by ``run_id``; False if the claim was lost meanwhile."""
    done = await conn.fetchval(
        "UPDATE reconciliation_pulls SET status = 'imported', run_id = $5, completed_at = $6,"
        " failure = NULL WHERE psp = $1 AND report_date = $2 AND status = 'claimed'"
        " AND claimed_by = $3 AND tries = $4 RETURNING true",
        claim.psp, claim.day, claim.worker, claim.tries, run_id, now)
    return bool(done)


async def fail_pull(conn: Conn, claim: PullClaim, *, failure: str, retry_at: int) -> None:
    await conn.execute(
        "UPDATE reconciliation_pulls SET status = 'failed', failure = $5, retry_at = $6"
        " WHERE psp = $1 AND report_date = $2 AND status = 'claimed' AND claimed_by = $3"
        " AND tries = $4", claim.psp, claim.day, claim.worker, claim.tries, failure[:2000],
        retry_at)


async def imported_days(conn: Conn, *, psp: str, days: list[date]) -> set[date]:
    rows = await conn.fetch("SELECT report_date FROM reconciliation_pulls WHERE psp = $1"
                            " AND report_date = ANY($2::date[]) AND status = 'imported'",
                            psp, days)
    return {r["report_date"] for r in rows}


async def pulls_of_day(conn: Conn, day: date) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT psp, report_date, status, tries, run_id, failure, completed_at"
        " FROM reconciliation_pulls WHERE report_date = $1 ORDER BY psp", day)
