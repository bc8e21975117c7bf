"""The money operator commands: `kassa balance` (a merchant's balance, now or at a past
moment), `kassa reconcile` (import a PSP's settlement report, list runs and discrepancies,
resolve one) and `kassa payouts review` (payouts the bank disagreed about, held until someone
resolves them)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Awaitable, Callable
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

    size = max(file.stat().st_size, 1)
    started = time.monotonic()

    def progress(rows: int) -> None:  # rows/s and, from the bytes per row so far, the ETA
        if not sys.stderr.isatty():
            return
        elapsed = max(time.monotonic() - started, 1e-6)
        rate = rows / elapsed
        typer.echo(f"\r{rows:,} rows  {rate:,.0f} rows/s  ~{size:,} bytes", err=True, nl=False)

    try:
        run = _with_kassa(lambda k: reconciliation.import_report(
            k, psp=psp, path=file, report_format=report_format, on_rows=progress))
    except KassaError as exc:
        raise _fail(exc) from None
    if sys.stderr.isatty():
        typer.echo("", err=True)
    typer.echo(json.dumps(run, indent=2))


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
