"""The `kassa` command line: the Typer app, its commands and groups registered in the order
`kassa --help` lists them, and `main` (the console script and `python -m kassa.cli`).

Where the commands are: serve.py (api, worker, simulator), dev.py (`kassa dev`, with
dev_merchant.py), ops.py (migrate, merchants, ledger, relay, webhooks, attempts), money.py
(balance, reconcile, payouts review), fx.py (exchange rates), routing.py (routing, psp). What every
command shares: database.py (the database it uses), process.py (signals, sockets, the event
loop), reporting.py (a failure as cause and remedy)."""

from __future__ import annotations

from typing import Any

import typer

from kassa.cli import dev, fx, money, ops, routing, serve
from kassa.cli.reporting import main_entry
from kassa.vault import cli as vault_cli


class _App(typer.Typer):
    """The `kassa` entry point: start-up errors are two lines (cause, remedy) and exit 2;
    `--debug` anywhere on the command line shows log lines and tracebacks instead."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs:
            return super().__call__(*args, **kwargs)
        main_entry(lambda argv: typer.Typer.__call__(self, args=argv, prog_name="kassa"))


app = _App(no_args_is_help=True, add_completion=False,
           help="kassa: payment orchestration and double-entry ledger.")


@app.callback()
def _options(debug: bool = typer.Option(
        False, "--debug", help="log lines and tracebacks (may be given anywhere; or "
                               "KASSA_DEBUG=1)")) -> None:
    """kassa: payment orchestration and double-entry ledger."""


app.command()(ops.migrate)
app.command()(serve.api)
app.command()(serve.worker)
app.command()(serve.simulator)
app.command("dev")(dev.command)
app.command()(money.balance)
app.add_typer(ops.merchants_app, name="merchants")
app.add_typer(ops.ledger_app, name="ledger")
app.add_typer(ops.relay_app, name="relay")
app.add_typer(ops.webhooks_app, name="webhooks")
app.add_typer(ops.attempts_app, name="attempts")
app.add_typer(money.reconcile_app, name="reconcile")
app.add_typer(money.payouts_app, name="payouts")
app.add_typer(fx.fx_app, name="fx")
app.add_typer(routing.routing_app, name="routing")
app.add_typer(routing.psp_app, name="psp")
app.add_typer(vault_cli.app, name="vault")


def main() -> None:
    app()


__all__ = ["app", "main"]
