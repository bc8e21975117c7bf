"""The money operator commands: `kassa balance` (a merchant's balance, now or at a past
moment), `kassa reconcile` (import a PSP's settlement report, list runs and discrepancies,
resolve one, export reports) and `kassa payouts review` (payouts the bank disagreed about,
held until someone resolves them)."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import typer

from kassa.cli.database import database
from kassa.cli.process import run_async
from kassa.config import Settings

reconcile_app = typer.Typer(no_args_is_help=True,
                            help="Reconcile PSP settlement reports against the ledger.")
payouts_app = typer.Typer(no_args_is_help=True, help="Payouts that need an operator.")

T = TypeVar("T")
REPORT_FILE = typer.Argument(..., exists=True, dir_okay=False, readable=True)


def _with_kassa(action: Callable[[Any], Awaitable[T]]) -> T:
    settings = Settings()

    async def run(dsn: str) -> T:
        from kassa import bootstrap

        kassa, close = await bootstrap.build(settings, dsn, pool_size=2)
        try:
            return await action(kassa)
        finally:
            await close()

    with database(settings) as dsn:
        return run_async(run(dsn))


class _ImportProgress:
    """A progress bar on stderr for a long import: rows so far, rows/s and the ETA. The
    total is estimated from the file's size and its first lines' length (a CSV row's length
    varies little), so the bar may end a little before or after 100 %."""

    SAMPLE = 1 << 16

    def __init__(self, file: Path) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        size = file.stat().st_size
        with file.open("rb") as f:
            head = f.read(self.SAMPLE)
        lines = max(head.count(b"\n"), 1)
        self.total = max(int(size / (len(head) / lines)) - 1, 1) if head else 1
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("rows  {task.fields[rate]} rows/s"), TimeElapsedColumn(),
            TextColumn("ETA"), TimeRemainingColumn(),
            console=Console(stderr=True), transient=False)
        self._task = self._progress.add_task(f"importing {file.name}", total=self.total,
                                             rate="-")
        self._started = time.monotonic()

    def rows(self, done: int) -> None:
        rate = done / max(time.monotonic() - self._started, 1e-6)
        self._progress.update(self._task, completed=min(done, self.total),
                              total=max(self.total, done), rate=f"{rate:,.0f}")

    def __enter__(self) -> _ImportProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        done = self._progress.tasks[0].completed
        if exc[0] is None:  # imported: the bar ends full, at the true count
            self._progress.update(self._task, total=done or 1, completed=done or 1)
        self._progress.stop()


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


def balance(merchant_id: str, as_of: int = typer.Option(
        None, "--as-of", help="unix seconds: the balance at the end of that second")) -> None:
    """A merchant's balance as GET /v1/balance shows it (JSON), now or --as-of a moment."""
    from kassa.domain.errors import KassaError
    from kassa.services import balances

    try:
        obj = _with_kassa(lambda k: balances.balance(k, merchant_id=merchant_id, as_of=as_of))
    except KassaError as exc:
        raise _fail(exc) from None
    typer.echo(json.dumps(obj, indent=2))


@reconcile_app.command("import")
def reconcile_import(
        file: Path = REPORT_FILE,
        psp: str = typer.Option(..., "--psp", help="the PSP whose report this is"),
        report_format: str = typer.Option(None, "--format",
                                          help="simulator | stripe | adyen (default: the "
                                               "PSP's own)")) -> None:
    """Import a settlement report as a reconciliation run (the same file twice: the first
    run again); prints the run as JSON."""
    from kassa.domain.errors import KassaError
    from kassa.services import reconciliation

    bar = _ImportProgress(file) if sys.stderr.isatty() else None  # nothing on a pipe
    try:
        with bar if bar is not None else contextlib.nullcontext():
            run = _with_kassa(lambda k: reconciliation.import_report(
                k, psp=psp, path=file, report_format=report_format,
                on_rows=bar.rows if bar is not None else None))
            if bar is not None:
                bar.rows(run["rows_read"])
    except KassaError as exc:
        raise _fail(exc) from None
    typer.echo(json.dumps(run, indent=2))


report_app = typer.Typer(no_args_is_help=True,
                         help="Reconciliation reports: a run's, a merchant's settlement, a day's.")
reconcile_app.add_typer(report_app, name="report")
FORMAT = typer.Option("csv", "--format", help="csv | json")
DAILY_FORMAT = typer.Option("text", "--format", help="text | csv | json")


def _day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)",
                                 param_hint=option) from None


def _emit(fmt: str, report: dict[str, Any], csv_text: Callable[[], str],
          text: Callable[[], str] | None = None) -> None:
    if fmt == "json":
        typer.echo(json.dumps(report, indent=2))
    elif fmt == "csv":
        typer.echo(csv_text(), nl=False)
    elif fmt == "text" and text is not None:
        typer.echo(text())
    else:
        raise typer.BadParameter(f"unknown format {fmt!r}", param_hint="--format")


@report_app.command("run")
def report_run(run_id: str, fmt: str = FORMAT) -> None:
    """A run's report: its match summary per currency, then each discrepancy."""
    from kassa.domain.errors import KassaError
    from kassa.reconciliation import exports
    from kassa.services import reconciliation_reports

    if fmt not in ("csv", "json"):
        raise typer.BadParameter(f"unknown format {fmt!r}", param_hint="--format")
    try:
        report = _with_kassa(lambda k: reconciliation_reports.run_report(k, run_id=run_id))
    except KassaError as exc:
        raise _fail(exc) from None
    _emit(fmt, report, lambda: exports.to_csv(exports.RUN_COLUMNS, exports.run_rows(report)))


@report_app.command("settlement")
def report_settlement(merchant: str = typer.Option(..., "--merchant", help="acct_…"),
                      start: str = typer.Option(..., "--from", help="first UTC day"),
                      end: str = typer.Option(..., "--to", help="last UTC day (included)"),
                      fmt: str = FORMAT) -> None:
    """A merchant's settlement over a period, per currency, from the ledger: gross, fees,
    refunds, disputes, net, payouts."""
    from kassa.domain.errors import KassaError
    from kassa.reconciliation import exports
    from kassa.services import reconciliation_reports

    if fmt not in ("csv", "json"):
        raise typer.BadParameter(f"unknown format {fmt!r}", param_hint="--format")
    first, last = _day(start, "--from"), _day(end, "--to")
    try:
        report = _with_kassa(lambda k: reconciliation_reports.merchant_settlement(
            k, merchant_id=merchant, start=first, end=last))
    except KassaError as exc:
        raise _fail(exc) from None
    _emit(fmt, report, lambda: exports.to_csv(exports.SETTLEMENT_COLUMNS,
                                              exports.settlement_rows(report)))


@report_app.command("daily")
def report_daily(day: str = typer.Option(..., "--date", help="the UTC day"),
                 fmt: str = DAILY_FORMAT) -> None:
    """A day per PSP account: its pull, rows read and matched, discrepancies by kind and
    still open, the settlement posted, the PSP receivable left at the day's end."""
    from kassa.reconciliation import exports
    from kassa.services import reconciliation_reports

    if fmt not in ("text", "csv", "json"):
        raise typer.BadParameter(f"unknown format {fmt!r}", param_hint="--format")
    the_day = _day(day, "--date")
    summary = _with_kassa(lambda k: reconciliation_reports.daily_summary(k, day=the_day))
    _emit(fmt, summary, lambda: exports.to_csv(exports.DAILY_COLUMNS,
                                               exports.daily_rows(summary)),
          lambda: exports.daily_text(summary))


@reconcile_app.command("runs")
def reconcile_runs(limit: int = typer.Option(20, min=1, max=100)) -> None:
    """The newest reconciliation runs, one JSON object a line."""
    from kassa.services import reconciliation

    runs, _ = _with_kassa(lambda k: reconciliation.list_runs(
        k, limit=limit, starting_after=None, ending_before=None))
    for run in runs:
        typer.echo(json.dumps(run))


@reconcile_app.command("discrepancies")
def reconcile_discrepancies(run_id: str, resolution: str = typer.Option(
        None, help="open | auto_resolved | resolved")) -> None:
    """A run's discrepancies, one JSON object a line."""
    from kassa.domain.errors import KassaError
    from kassa.services import reconciliation

    async def every(k: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        after = None
        while True:
            page, more = await reconciliation.list_discrepancies(
                k, run_id=run_id, limit=100, starting_after=after, resolution=resolution)
            out += page
            if not more:
                return out
            after = page[-1]["id"]

    try:
        for d in _with_kassa(every):
            typer.echo(json.dumps(d))
    except KassaError as exc:
        raise _fail(exc) from None


@reconcile_app.command("resolve")
def reconcile_resolve(discrepancy_id: str,
                      by: str = typer.Option(..., "--by", help="who resolved it"),
                      why: str = typer.Option(..., "--why", help="why it is resolved")) -> None:
    """Resolve an open discrepancy, saying who and why."""
    from kassa.domain.errors import KassaError
    from kassa.services import reconciliation

    try:
        typer.echo(json.dumps(_with_kassa(lambda k: reconciliation.resolve_discrepancy(
            k, discrepancy_id=discrepancy_id, resolved_by=by, reason=why))))
    except KassaError as exc:
        raise _fail(exc) from None


@payouts_app.command("review")
def payouts_review(payout_id: str = typer.Argument(None),
                   by: str = typer.Option(None, "--by", help="who resolved it"),
                   why: str = typer.Option(None, "--why", help="what was checked with the bank")
                   ) -> None:
    """Without a payout id: the payouts held for review (the bank reported another amount
    or currency). With one, --by and --why: resume it (the worker follows the bank again)."""
    from kassa.db import payouts as payouts_db

    if payout_id is None:
        rows = _with_kassa(lambda k: payouts_db.held_for_review(k.pool))
        for r in rows:
            typer.echo(json.dumps(dict(r)))
        return
    if not by or not why:
        raise _fail(ValueError("say who resolved it (--by) and why (--why)"))
    done = _with_kassa(lambda k: payouts_db.resolve_review(
        k.pool, payout_id=payout_id, resolution=f"{by}: {why}"))
    if not done:
        raise _fail(ValueError(f"payout {payout_id} is not held for review"))
    typer.echo(f"payout {payout_id}: resumed")
