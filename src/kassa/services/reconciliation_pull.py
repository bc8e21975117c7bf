"""The scheduled daily pull: once per PSP account and UTC day, download the account's
settlement report of a day that is over (through its SettlementReportSource) and import it
as a reconciliation run. Any number of pull workers may run: each day is claimed in the
database (db/reconciliation_pulls.py ``claim_pull``) and marked imported in the import's own
transaction, so a day gets exactly one run however the workers race; no download happens
inside a transaction. Days missed while no worker ran are caught up, back to
``catch_up_days`` before today; a report not published yet, unreachable or unreadable is
tried again later (backoff), the day stays unimported until then.

A claim is a lease: a worker that dies leaves it to run out, and another worker takes the day
over. A live worker renews its lease while it downloads and imports (a heartbeat every third
of the lease), so an import that takes longer than the lease is never taken over mid-way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import asyncpg

from kassa.db import reconciliation_pulls as rdb
from kassa.domain.errors import KassaError
from kassa.psp.base import ReportUnavailable, SettlementReportSource
from kassa.services import reconciliation
from kassa.services.context import Kassa

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PullPolicy:
    reports_dir: Path  # where downloaded reports are kept (the run names its file)
    catch_up_days: int = 7  # how far back missed days are pulled
    lease_seconds: int = 900  # a claim older than this is taken over (its worker died)
    retry_seconds: int = 300  # first retry of a failed day; doubles, capped at 6 hours
    max_retry_seconds: int = 6 * 3600
    heartbeat_seconds: float | None = None  # how often a live claim renews its lease
    # (None: a third of the lease)

    @property
    def heartbeat_every(self) -> float:
        return self.heartbeat_seconds or self.lease_seconds / 3


def day_bounds(day: date) -> tuple[int, int]:
    start = int(datetime.combine(day, time(), UTC).timestamp())
    return start, start + 86_400


def due_days(today: date, catch_up_days: int) -> list[date]:
    """The days a pull on ``today`` is for, oldest first: each day that is over, back to
    ``catch_up_days`` before today."""
    return [today - timedelta(days=n) for n in range(catch_up_days, 0, -1)]


async def pull_settlement_reports(kassa: Kassa, *,
                                  sources: Mapping[str, SettlementReportSource],
                                  policy: PullPolicy, worker: str,
                                  today: date | None = None) -> int:
    """One pass over every account and due day; the number of days this worker imported."""
    today = today or datetime.fromtimestamp(kassa.clock(), UTC).date()
    days = due_days(today, policy.catch_up_days)
    imported = 0
    for psp in sorted(sources):
        done = await rdb.imported_days(kassa.pool, psp=psp, days=days)
        for day in days:
            if day not in done and await pull_day(kassa, psp=psp, source=sources[psp],
                                                  day=day, policy=policy, worker=worker):
                imported += 1
    return imported


async def pull_day(kassa: Kassa, *, psp: str, source: SettlementReportSource, day: date,
                   policy: PullPolicy, worker: str) -> bool:
    """Pull and import one account's day if this worker gets the claim; True if it did."""
    now = kassa.clock()
    claim = await rdb.claim_pull(kassa.pool, psp=psp, day=day, worker=worker, now=now,
                                 lease_until=now + policy.lease_seconds)
    if claim is None:
        return False
    folder = policy.reports_dir / psp
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{psp}_{day.isoformat()}.{source.format}.csv"
    # a worker taking over a dead one's claim never writes into the file it left
    part = folder / f".{path.name}.{claim.tries}.part"
    try:
        async with _heartbeat(kassa, claim, policy):
            await source.download(day=day, into=part)
            part.replace(path)
            run = await reconciliation.import_report(
                kassa, psp=psp, path=path, report_format=source.format, pull=claim,
                covers=day_bounds(day))
    except reconciliation.PullClaimLost:
        log.warning("reconcile pull %s %s: the claim passed to another worker", psp, day)
        return False
    except (ReportUnavailable, KassaError) as exc:
        part.unlink(missing_ok=True)
        wait = min(policy.retry_seconds * 2 ** (claim.tries - 1), policy.max_retry_seconds)
        await rdb.fail_pull(kassa.pool, claim, failure=str(exc), retry_at=kassa.clock() + wait)
        log.warning("reconcile pull %s %s failed (try %d, next in %ds): %s", psp, day,
                    claim.tries, wait, exc)
        return False
    log.info("reconcile pull %s %s: run %s, %d rows, %d discrepancies", psp, day, run["id"],
             run["rows_read"], run["discrepancies"])
    return True


@contextlib.asynccontextmanager
async def _heartbeat(kassa: Kassa, claim: rdb.PullClaim, policy: PullPolicy
                     ) -> AsyncIterator[None]:
    """Renew the claim's lease every ``policy.heartbeat_every`` seconds while the block runs
    (on a pool connection of its own: the import's transaction is not touched). A renewal
    that finds the claim gone stops beating; the import then fails to complete the pull
    (PullClaimLost) and rolls back. A renewal that fails (the database unreachable a moment)
    is tried again at the next beat; the lease covers two missed beats."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(policy.heartbeat_every)
            try:
                held = await rdb.renew_pull(kassa.pool, claim,
                                            lease_until=kassa.clock() + policy.lease_seconds)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("reconcile pull %s %s: lease renewal failed: %s", claim.psp,
                            claim.day, exc)
                continue
            if not held:
                log.warning("reconcile pull %s %s: the claim is no longer this worker's",
                            claim.psp, claim.day)
                return

    task = asyncio.create_task(beat(), name=f"reconcile-pull-heartbeat-{claim.psp}")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
