"""Reconcile a PSP's settlement report: import it as a reconciliation run (once per file:
its SHA-256 is unique per PSP, so importing the same file twice changes nothing), match each
row to kassa's payment, refund or dispute, record every discrepancy with its kind and
resolution, and post the settlement of the matched rows, so a fully reconciled day leaves the
PSP's receivable at zero (ARCHITECTURE §2 and §7).

The file is read twice, streamed both times (memory stays flat however long it is): once for
its hash (a file already imported answers its run at once), then parsed row by row into a
COPY. Everything else is set-based SQL in one transaction (db/reconciliation.py).
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from kassa.db import reconciliation as rdb
from kassa.db import reconciliation_conversions as conversions
from kassa.db import reconciliation_pulls as pulls_db
from kassa.db import reconciliation_queries as queries
from kassa.domain.errors import InvalidRequest, NotFound
from kassa.reconciliation.contracts import CONTRACTS
from kassa.reconciliation.reports import FORMAT_OF_PSP, PARSERS, ReportError, Staged
from kassa.representations.reconciliation import discrepancy as render_discrepancy
from kassa.representations.reconciliation import run as render_run
from kassa.services.context import Kassa
from kassa.services.uow import IdempotencyHandle, UnitOfWork

DAY = 86_400
CHUNK = 1 << 20


@dataclass(slots=True)
class Progress:
    """What a long import has done so far (the CLI's progress bar reads it)."""

    rows: int = 0


def file_sha256(path: Path, *, covers: tuple[int, int] | None = None) -> str:
    """The file's SHA-256; with ``covers`` (a pulled day) of the day and the file, so two
    days whose reports are byte for byte the same (two empty days: a header only) are two
    runs, each checked for what kassa moved on its own day."""
    digest = hashlib.sha256()
    if covers is not None:
        digest.update(f"kassa pulled report covering {covers[0]}-{covers[1]}\n".encode())
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(slots=True)
class _LineCount:
    n: int = 0


def _lines(f: IO[str], count: _LineCount) -> Iterator[str]:
    for line in f:
        count.n += 1
        if "\x00" in line:  # no text column holds one (PostgreSQL's text cannot)
            raise ReportError("not a CSV line: a NUL byte", line=count.n)
        yield line


def _checked(rows: Iterator[Staged], count: _LineCount) -> Iterator[Staged]:
    """The parser's rows; a file that is not UTF-8 text or not CSV (a NUL byte, a broken
    quote) is a ReportError naming the line, like any other bad report."""
    try:
        yield from rows
    except UnicodeDecodeError as exc:
        raise ReportError(f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} after line "
                          f"{count.n})") from None
    except csv.Error as exc:
        raise ReportError(f"not a CSV line: {exc}", line=max(count.n, 1)) from None


class PullClaimLost(Exception):
    """The daily pull's claim on the day passed to another worker during the import: this
    import is rolled back (the other worker's makes the day's run)."""


async def import_report(kassa: Kassa, *, psp: str, path: Path, report_format: str | None = None,
                        progress: Progress | None = None,
                        on_rows: Callable[[int], None] | None = None,
                        pull: pulls_db.PullClaim | None = None,
                        covers: tuple[int, int] | None = None) -> dict[str, Any]:
    """The run of this file (the earlier one if it was imported before).

    ``pull``: the daily pull's claim on the report's day, marked imported in the import's
    own transaction (PullClaimLost if it is no longer held). ``covers``: the UTC interval the
    report is known to cover (a pulled day), rather than the days its rows fall on — so
    kassa's movements of that day the PSP left out are ``missing_at_psp`` even when the
    report has no row at all."""
    fmt = report_format or FORMAT_OF_PSP.get(psp)
    parser = PARSERS.get(fmt or "")
    if parser is None:
        raise InvalidRequest(f"No settlement report format for PSP {psp!r}; give one of "
                             f"{', '.join(PARSERS)}.", param="format")
    sha256 = file_sha256(path, covers=covers)
    known = await rdb.find_run(kassa.pool, psp=psp, sha256=sha256)
    if known is not None:
        return await _known(kassa, known, pull)
    contract = CONTRACTS.get(psp)
    progress = progress or Progress()
    bounds: list[int] = []

    async def records() -> AsyncIterator[tuple[Any, ...]]:
        lo: int | None = None
        hi: int | None = None
        count = _LineCount()
        with path.open(newline="", encoding="utf-8-sig") as f:
            for row in _checked(parser.staged(_lines(f, count)), count):
                category, gross, currency, created = row[1], row[4], row[6], row[8]
                if len(row) > 9:  # the PSP converted it: its fee is on the settled side
                    gross, currency = row[10], row[9]  # type: ignore[misc]
                expected = (None if contract is None or category == "fee"
                            else contract.expected_fee_minor(category, gross, currency))
                if created is not None:
                    if lo is None or created < lo:
                        lo = created
                    if hi is None or created > hi:
                        hi = created
                progress.rows += 1
                if on_rows is not None and progress.rows % 10_000 == 0:
                    on_rows(progress.rows)
                yield ((*row, expected) if len(row) > 9
                       else (*row, None, None, None, None, expected))
        if lo is not None and hi is not None:
            bounds.extend((lo // DAY * DAY, hi // DAY * DAY + DAY))

    now = kassa.clock()
    run_id = kassa.ids("reconciliation_run")
    async with kassa.pool.acquire() as conn, conn.transaction():
        await rdb.lock_psp(conn, psp)
        known = await rdb.find_run(conn, psp=psp, sha256=sha256)
        if known is not None:  # imported by someone else meanwhile
            return await _known(kassa, known, pull, conn)
        await rdb.insert_run(conn, run_id=run_id, psp=psp, format=parser.format,
                             source_name=path.name, sha256=sha256, created=now)
        try:
            await rdb.stage_rows(conn, records())
        except ReportError as exc:
            raise InvalidRequest(f"{path.name}: {exc}", param="file") from None
        await rdb.match_rows(conn, psp=psp)
        await conversions.flag_conversions(conn, band=kassa.fx.reconcile_band,
                                           max_age=kassa.fx.max_age_seconds)
        duplicate = await rdb.duplicate_rows(conn)
        if duplicate is not None:  # nothing of the file is kept: the transaction rolls back
            rows = ", ".join(f"line {n}" for n in duplicate["rows"])
            raise InvalidRequest(
                f"{path.name}: one {duplicate['category']} movement ({duplicate['what']}) is"
                f" in the file more than once ({rows}); a settlement row is one movement.",
                param="file", code="duplicate_settlement_row")
        await rdb.record_discrepancies(conn, run_id=run_id, created=now)
        covers_from, covers_to = covers or ((bounds[0], bounds[1]) if bounds
                                            else (None, None))
        if covers_from is not None and covers_to is not None:
            await rdb.record_missing_at_psp(conn, run_id=run_id, psp=psp,
                                            covers_from=covers_from, covers_to=covers_to,
                                            created=now)
        await rdb.post_settlement(conn, run_id=run_id, psp=psp)
        await rdb.write_items(conn, run_id=run_id)
        await rdb.finish_run(conn, run_id=run_id, covers_from=covers_from,
                             covers_to=covers_to, completed_at=kassa.clock())
        if pull is not None and not await pulls_db.complete_pull(conn, pull, run_id=run_id,
                                                            now=kassa.clock()):
            raise PullClaimLost(f"{pull.psp} {pull.day}")
        row = await rdb.get_run(conn, run_id)
    assert row is not None
    return render_run(row)


async def _known(kassa: Kassa, run: Any, pull: pulls_db.PullClaim | None,
                 conn: Any = None) -> dict[str, Any]:
    """A file imported before: its run; a pulled day whose report is that very file (two
    days with the same report, e.g. both without a movement) is imported by that run."""
    if pull is not None and not await pulls_db.complete_pull(conn or kassa.pool, pull,
                                                        run_id=run["id"], now=kassa.clock()):
        raise PullClaimLost(f"{pull.psp} {pull.day}")
    return render_run(run)


async def retrieve_run(kassa: Kassa, *, run_id: str) -> dict[str, Any]:
    row = await rdb.get_run(kassa.pool, run_id)
    if row is None:
        raise NotFound(f"No such reconciliation run: '{run_id}'", param="id")
    return render_run(row)


async def list_runs(kassa: Kassa, *, limit: int, starting_after: str | None,
                    ending_before: str | None) -> tuple[list[dict[str, Any]], bool]:
    for cursor in (starting_after, ending_before):
        if cursor is not None and await rdb.get_run(kassa.pool, cursor) is None:
            raise InvalidRequest(f"No such reconciliation run: '{cursor}'",
                                 param="starting_after" if cursor == starting_after
                                 else "ending_before", code="resource_missing")
    rows, more = await queries.list_runs(kassa.pool, limit=limit, starting_after=starting_after,
                                     ending_before=ending_before)
    return [render_run(r) for r in rows], more


async def list_discrepancies(kassa: Kassa, *, run_id: str, limit: int,
                             starting_after: str | None, kind: str | None = None,
                             resolution: str | None = None
                             ) -> tuple[list[dict[str, Any]], bool]:
    await retrieve_run(kassa, run_id=run_id)
    if starting_after is not None:
        cursor = await queries.get_discrepancy(kassa.pool, starting_after)
        if cursor is None or cursor["run_id"] != run_id:
            raise InvalidRequest(f"No such discrepancy in this run: '{starting_after}'",
                                 param="starting_after", code="resource_missing")
    rows, more = await queries.list_discrepancies(kassa.pool, run_id=run_id, limit=limit,
                                              starting_after=starting_after, kind=kind,
                                              resolution=resolution)
    return [render_discrepancy(r) for r in rows], more


async def resolve_discrepancy(kassa: Kassa, *, discrepancy_id: str, resolved_by: str,
                              reason: str, idempotency: IdempotencyHandle | None = None
                              ) -> dict[str, Any]:
    """A person resolves an open discrepancy and says why (kept with who and when)."""
    if not resolved_by.strip():
        raise InvalidRequest("Say who resolved it.", param="resolved_by")
    if not reason.strip():
        raise InvalidRequest("Say why it is resolved.", param="reason")
    async with UnitOfWork(kassa, idempotency) as uow:
        conn = await uow.connection()
        row = await queries.resolve_discrepancy(conn, discrepancy_id=discrepancy_id,
                                            resolved_by=resolved_by.strip(),
                                            how=reason.strip(), at=kassa.clock())
        if row is None:
            existing = await queries.get_discrepancy(conn, discrepancy_id)
            if existing is None:
                raise NotFound(f"No such discrepancy: '{discrepancy_id}'", param="id")
            raise InvalidRequest(f"This discrepancy is already {existing['resolution']}.",
                                 param="id", code="discrepancy_not_open")
        obj = render_discrepancy(row)
        await uow.commit(response=obj, resource_id=discrepancy_id)
    return obj


