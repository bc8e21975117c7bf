"""The `kassa` command line: dev, api, worker, simulator, migrate, merchants, ledger."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import typer

from kassa.config import Settings
from kassa.runtime import check_free, database, main_entry, redacted


class _App(typer.Typer):
    """The `kassa` entry point: start-up errors are two lines (cause, remedy) and exit 2;
    `--debug` anywhere on the command line shows log lines and tracebacks instead."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs:
            return super().__call__(*args, **kwargs)
        parent = super()
        main_entry(lambda argv: parent.__call__(args=argv, prog_name="kassa"))


app = _App(no_args_is_help=True, add_completion=False,
           help="kassa: payment orchestration and double-entry ledger.")


@app.callback()
def _options(debug: bool = typer.Option(
        False, "--debug", help="log lines and tracebacks (may be given anywhere; or "
                               "KASSA_DEBUG=1)")) -> None:
    """kassa: payment orchestration and double-entry ledger."""


merchants_app = typer.Typer(no_args_is_help=True, help="Manage merchants and their API keys.")
ledger_app = typer.Typer(no_args_is_help=True, help="Inspect and verify the ledger.")
app.add_typer(merchants_app, name="merchants")
app.add_typer(ledger_app, name="ledger")
relay_app = typer.Typer(no_args_is_help=True, help="The outbox relay to Kafka.")
app.add_typer(relay_app, name="relay")
webhooks_app = typer.Typer(no_args_is_help=True, help="Merchant webhook deliveries.")
app.add_typer(webhooks_app, name="webhooks")
attempts_app = typer.Typer(no_args_is_help=True, help="PSP attempts recovery watches.")
app.add_typer(attempts_app, name="attempts")


def _run(coro):  # type: ignore[no-untyped-def]
    import uvloop

    return uvloop.run(coro)


@app.command()
def migrate(grant_to: str = typer.Option(
        None, help="the serving role to grant the services' privileges to (default: "
                   "KASSA_SERVICE_ROLE, else KASSA_DATABASE_URL's user when "
                   "KASSA_MIGRATION_DATABASE_URL logs in as another)")) -> None:
    """Apply database migrations (as the schema owner), one migrator at a time."""
    settings = Settings()
    if grant_to:
        settings = settings.model_copy(update={"service_role": grant_to})
    with database(settings, migrate=True) as dsn:
        from kassa.runtime import service_role

        role = service_role(settings)
        target = settings.migration_database_url or dsn
        typer.echo(f"migrated {redacted(target)}"
                   + (f"; serving role {role} granted its privileges" if role else ""))



@merchants_app.command("create")
def merchants_create(name: str) -> None:
    """Create a merchant; prints JSON with merchant_id and secret_key (shown once)."""
    settings = Settings()
    with database(settings) as dsn:
        typer.echo(json.dumps(_run(_create_merchant(settings, dsn, name))))


async def _create_merchant(settings: Settings, dsn: str, name: str) -> dict[str, str]:
    from kassa import bootstrap
    from kassa.services import merchants

    kassa, close = await bootstrap.build(settings, dsn, pool_size=2)
    try:
        return await merchants.create_merchant(kassa, name=name)
    finally:
        await close()


@ledger_app.command("verify")
def ledger_verify() -> None:
    """Check every ledger invariant; exit 1 with a report if any fails."""
    settings = Settings()
    with database(settings) as dsn:
        report = _run(_verify(dsn))
    for name, count in report.checked.items():
        typer.echo(f"{name}: {count}")
    if report.ok:
        typer.echo("ledger OK: every transaction balances, balances equal the sum of entries")
        return
    for problem in report.problems:
        typer.echo(f"FAIL {problem}", err=True)
    raise typer.Exit(1)


async def _verify(dsn: str):  # type: ignore[no-untyped-def]
    from kassa.db.pool import create_pool
    from kassa.ledger.verify import verify

    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        return await verify(pool)
    finally:
        await pool.close()


@relay_app.command("status")
def relay_status() -> None:
    """Each relay's stored position, events published, and backlog (committed, not sent)."""
    settings = Settings()
    with database(settings) as dsn:
        typer.echo(json.dumps(_run(_relay_status(dsn)), indent=2))


async def _relay_status(dsn: str) -> list[dict[str, object]]:
    from kassa.db import relay_repository as rrepo
    from kassa.db.pool import create_pool

    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        out: list[dict[str, object]] = []
        for row in await rrepo.list_positions(pool):
            position = rrepo.Position(int(row["xid"]), row["seq"])
            out.append({"name": row["name"], "xid": position.xid, "seq": position.seq,
                        "published": row["published"],
                        "backlog": await rrepo.backlog(pool, after=position),
                        "updated_at": row["updated_at"].isoformat()})
        return out
    finally:
        await pool.close()


@webhooks_app.command("redeliver")
def webhooks_redeliver(event_id: str, endpoint: str = typer.Option(
        None, help="only to this endpoint (we_…), even one that never had the event")) -> None:
    """Send an event again to the endpoints where it was delivered or is dead."""
    settings = Settings()
    with database(settings) as dsn:
        result = _run(_webhooks(settings, dsn, "redeliver", event_id=event_id,
                                endpoint_id=endpoint))
    if isinstance(result, str):
        typer.echo(result, err=True)
        raise typer.Exit(1)
    for d in result["data"]:
        typer.echo(f"{d['id']} {d['event']} -> {d['webhook_endpoint']}: scheduled")
    typer.echo(f"{len(result['data'])} delivery(ies) scheduled")


@webhooks_app.command("list-dead")
def webhooks_list_dead(limit: int = typer.Option(100, min=1, max=10_000),
                       merchant: str = typer.Option(None, help="only this merchant (acct_…)"),
                       as_json: bool = typer.Option(False, "--json", help="one JSON per line")
                       ) -> None:
    """Deliveries that exhausted their retries, most recent first."""
    settings = Settings()
    with database(settings) as dsn:
        rows = _run(_webhooks(settings, dsn, "list-dead", limit=limit, merchant_id=merchant))
    for d in rows:
        if as_json:
            typer.echo(json.dumps(d))
        else:
            last = d["last_status_code"] or d["last_error"]
            typer.echo(f"{d['id']}  {d['event']}  {d['event_type']}  {d['webhook_endpoint']}  "
                       f"{d['url']}  attempts={d['attempt_count']}  last={last}")
    if not as_json:
        typer.echo(f"{len(rows)} dead delivery(ies)")


async def _webhooks(settings: Settings, dsn: str, action: str, **kw):  # type: ignore[no-untyped-def]
    from kassa import bootstrap
    from kassa.domain.errors import KassaError
    from kassa.services import webhooks

    kassa, close = await bootstrap.build(settings, dsn, pool_size=2)
    try:
        if action == "redeliver":
            return await webhooks.redeliver_as_operator(kassa, **kw)
        return await webhooks.list_dead(kassa, **kw)
    except KassaError as exc:
        return exc.message
    finally:
        await close()


@attempts_app.command("list")
def attempts_list(stuck: bool = typer.Option(
                      False, "--stuck", help="only those recovery gave up on (needs_attention)"),
                  limit: int = typer.Option(100, min=1, max=10_000),
                  as_json: bool = typer.Option(False, "--json", help="one JSON per line")
                  ) -> None:
    """PSP attempts whose outcome kassa does not know yet, oldest first: with --stuck the
    ones that need an operator (the payment stays where it was; recovery still looks at
    each hourly). Exit 1 when --stuck finds any."""
    settings = Settings()
    with database(settings) as dsn:
        rows = _run(_attempts(dsn, stuck=stuck, limit=limit))
    for a in rows:
        if as_json:
            typer.echo(json.dumps(a))
        else:
            typer.echo(f"{a['id']}  {a['operation']}  {a['status']}  {a['payment_intent']}  "
                       f"{a['psp']}  {a['amount']} {a['currency']}  tries={a['tries']}  "
                       f"created={a['created']}  {json.dumps(a['error']) if a['error'] else ''}")
    if not as_json:
        typer.echo(f"{len(rows)} attempt(s)" + (" need attention" if stuck else " open"))
    if stuck and rows:
        raise typer.Exit(1)


async def _attempts(dsn: str, *, stuck: bool, limit: int) -> list[dict[str, object]]:
    import asyncpg

    from kassa.db import repositories as repo

    conn = await asyncpg.connect(dsn)
    try:
        rows = await (repo.list_stuck_attempts(conn, limit=limit) if stuck
                      else repo.list_waiting_attempts(conn, limit=limit))
    finally:
        await conn.close()
    return [{"id": a.id, "operation": a.operation.value, "status": a.status.value,
             "payment_intent": a.payment_intent_id, "psp": a.psp, "amount": a.amount.minor,
             "currency": a.amount.currency, "tries": a.tries, "created": a.created,
             "error": a.error} for a in rows]


@app.command()
def api(workers: int = typer.Option(None, help="uvicorn worker processes")) -> None:
    """Serve the HTTP API (stateless; run as many as you like)."""
    import uvicorn

    settings = Settings()
    check_free(settings.host, settings.port, port_setting="KASSA_PORT",
               host_setting="KASSA_HOST")
    with database(settings) as dsn:
        os.environ["KASSA_DATABASE_URL"] = dsn
        uvicorn.run("kassa.api.main:app_factory", factory=True, host=settings.host,
                    port=settings.port, workers=workers or settings.api_workers, loop="uvloop",
                    http="httptools", log_level="warning", access_log=False)


ROLE_OPTION = typer.Option(None, help="recovery, availability, idempotency-expiry, relay, "
                                         "webhooks, psp-webhooks (default: all; relay only with "
                                         "KASSA_KAFKA_BOOTSTRAP)")


@app.command()
def worker(role: list[str] = ROLE_OPTION) -> None:
    """Run background workers (any number of replicas may run)."""
    from kassa.workers.loops import ROLES

    settings = Settings()
    roles = tuple(role) if role else ROLES
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise typer.BadParameter(f"unknown role(s): {', '.join(sorted(unknown))}")
    if role and "relay" in roles and not settings.kafka_bootstrap:
        raise typer.BadParameter("the relay role needs KASSA_KAFKA_BOOTSTRAP (without Kafka, "
                                 "consumers read GET /v1/events)")
    with database(settings) as dsn:
        _run(_worker(settings, dsn, roles))


async def _worker(settings: Settings, dsn: str, roles: tuple[str, ...]) -> None:
    from kassa import bootstrap
    from kassa.workers import loops

    kassa, close = await bootstrap.build(settings, dsn, pool_size=4)
    bootstrap.tune_gc()
    relay = bootstrap.build_relay(settings, kassa) if "relay" in roles else None
    sender = close_sender = None
    if "webhooks" in roles:
        sender, close_sender = bootstrap.build_webhook_sender(settings, kassa)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await loops.run(kassa, roles=roles, interval=settings.recovery_interval_seconds,
                        stop=stop, relay=relay, relay_interval=settings.relay_interval_seconds,
                        webhook_sender=sender,
                        psp_webhooks_interval=settings.psp_webhooks_interval_seconds)
    finally:
        if relay is not None:
            await relay.close()
        if close_sender is not None:
            await close_sender()
        await close()


STATE_OPTION = typer.Option(None, help="SQLite file keeping its books across restarts "
                                       "(default: KASSA_HOME/simulator.sqlite3)")


@app.command()
def simulator(port: int = typer.Option(None), host: str = typer.Option(None),
              webhook_url: str = typer.Option(
                  None, help="where to send webhooks, e.g. http://127.0.0.1:8000/psp/simulator/"
                             "webhooks (default: KASSA_SIMULATOR_WEBHOOK_URL)"),
              state: Path = STATE_OPTION,
              memory: bool = typer.Option(False, help="keep nothing across restarts")) -> None:
    """Serve the PSP simulator on its own (signing webhooks with
    KASSA_SIMULATOR_WEBHOOK_SECRET)."""
    from kassa.psp.simulator import SimulatorConfig
    from kassa.psp.simulator.server import serve

    settings = Settings()
    check_free(host or settings.simulator_host, port or settings.simulator_port,
               port_setting="KASSA_SIMULATOR_PORT" if port is None else "--port",
               host_setting="KASSA_SIMULATOR_HOST" if host is None else "--host")
    secrets = settings.simulator_webhook_secrets()
    config = SimulatorConfig(webhook_url=webhook_url or settings.simulator_webhook_url,
                             webhook_secret=secrets[0] if secrets else None)
    state_path = None if memory else (state or settings.home / "simulator.sqlite3")
    serve(host or settings.simulator_host, port or settings.simulator_port, config,
          state_path=state_path)


@app.command()
def dev() -> None:
    """Everything in one process tree: embedded PostgreSQL, migrations, API, workers, PSP
    simulator; prints a test secret key for a seeded merchant. Ctrl-C, SIGTERM or closing
    the terminal stops it all."""
    from kassa import dev as dev_tree

    dev_tree.run(Settings())


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
