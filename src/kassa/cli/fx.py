"""`kassa fx`: the exchange rates kassa converts payments with (domain/fx.py) — load a CSV
file, pull the configured provider (KASSA_FX_PROVIDER_URL), list the latest rate of each
pair."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from kassa.cli.money import REPORT_FILE, _fail, _with_kassa
from kassa.config import Settings

fx_app = typer.Typer(no_args_is_help=True, help="Exchange rates for multi-currency payments.")


@fx_app.command("load")
def fx_load(file: Path = REPORT_FILE,
            source: str = typer.Option(None, help="the rates' source when the file has no "
                                                  "source column (default: the file name)")
            ) -> None:
    """Store the rates of a CSV file (columns base, quote, rate, as_of [, source]); every
    row is checked before any is stored, a rate stored already is kept. Prints counts."""
    from kassa.domain.errors import KassaError
    from kassa.services import fx

    text = file.read_text(encoding="utf-8")
    try:
        counts = _with_kassa(lambda k: fx.load_file(k, text, source=source or file.name))
    except KassaError as exc:
        raise _fail(exc) from None
    typer.echo(json.dumps(counts))


@fx_app.command("pull")
def fx_pull(url: str = typer.Option(None, help="default: KASSA_FX_PROVIDER_URL")) -> None:
    """Fetch the provider's current rates (JSON or CSV) and store them. Prints counts."""
    from kassa.domain.errors import KassaError
    from kassa.services import fx

    target = url or Settings().fx_provider_url
    if not target:
        raise _fail(ValueError("no provider: set KASSA_FX_PROVIDER_URL or pass --url"))

    async def pull(k):  # type: ignore[no-untyped-def]
        import httpx

        async with httpx.AsyncClient(timeout=30.0) as client:
            return await fx.pull(k, client, target)

    try:
        counts = _with_kassa(pull)
    except KassaError as exc:
        raise _fail(exc) from None
    typer.echo(json.dumps(counts))


@fx_app.command("rates")
def fx_rates(base: str = typer.Option(None, help="only rates from this currency")) -> None:
    """The latest stored rate of each pair, one JSON object a line."""
    from kassa.services import fx

    for rate in _with_kassa(lambda k: fx.list_rates(
            k, base=base.lower() if base else None)):
        typer.echo(json.dumps(rate))
