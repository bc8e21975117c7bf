"""The `kassa` command line: dev, api, worker, simulator, migrate, merchants, ledger."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import typer

from kassa.config import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="kassa: payment orchestration and double-entry ledger.")
merchants_app = typer.Typer(no_args_is_help=True, help="Manage merchants and their API keys.")
ledger_app = typer.Typer(no_args_is_help=True, help="Inspect and verify the ledger.")
app.add_typer(merchants_app, name="merchants")
app.add_typer(ledger_app, name="ledger")
relay_app = typer.Typer(no_args_is_help=True, help="The outbox relay to Kafka.")
app.add_typer(relay_app, name="relay")
webhooks_app = typer.Typer(no_args_is_help=True, help="Merchant webhook deliveries.")
app.add_typer(webhooks_app, name="webhooks")


@contextlib.contextmanager
def database(settings: Settings, *, migrate: bool = False) -> Iterator[str]:
    """KASSA_DATABASE_URL when set; otherwise the embedded server under KASSA_HOME (started
    if needed, and stopped again on exit only if this process started it)."""
    if settings.database_url:
        dsn = settings.database_url
        embedded = None
    else:
        from kassa.db.embedded import EmbeddedPostgres

        settings.home.mkdir(parents=True, exist_ok=True)
        embedded = EmbeddedPostgres(settings.home.resolve() / "pgdata")
        dsn = embedded.start()
    try:
        if migrate:
            from kassa.db.migrate import upgrade

            upgrade(dsn)
        yield dsn
    finally:
        if embedded is not None:
            embedded.stop()


def _run(coro):  # type: ignore[no-untyped-def]
    import uvloop

    return uvloop.run(coro)


@app.command()
def migrate() -> None:
    """Apply database migrations."""
    with database(Settings(), migrate=True) as dsn:
        typer.echo(f"migrated {dsn}")


@merchants_app.command("create")
def merchants_create(name: str) -> None:
    """Create a merchant; prints JSON with merchant_id and secret_key (shown once)."""
    settings = Settings()
    with database(settings, migrate=True) as dsn:
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
    with database(settings, migrate=True) as dsn:
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
    with database(settings, migrate=True) as dsn:
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
    with database(settings, migrate=True) as dsn:
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
    with database(settings, migrate=True) as dsn:
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


@app.command()
def api(workers: int = typer.Option(None, help="uvicorn worker processes")) -> None:
    """Serve the HTTP API (stateless; run as many as you like)."""
    import uvicorn

    settings = Settings()
    with database(settings, migrate=True) as dsn:
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
    with database(settings, migrate=True) as dsn:
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


@app.command()
def simulator(port: int = typer.Option(None), host: str = typer.Option(None),
              webhook_url: str = typer.Option(
                  None, help="where to send webhooks, e.g. http://127.0.0.1:8000/psp/simulator/"
                             "webhooks (default: KASSA_SIMULATOR_WEBHOOK_URL)")) -> None:
    """Serve the PSP simulator on its own (signing webhooks with
    KASSA_SIMULATOR_WEBHOOK_SECRET)."""
    from kassa.psp.simulator import SimulatorConfig
    from kassa.psp.simulator.server import serve

    settings = Settings()
    secrets = settings.simulator_webhook_secrets()
    config = SimulatorConfig(webhook_url=webhook_url or settings.simulator_webhook_url,
                             webhook_secret=secrets[0] if secrets else None)
    serve(host or settings.simulator_host, port or settings.simulator_port, config)


@app.command()
def dev() -> None:
    """Everything in one process tree: embedded PostgreSQL, migrations, API, workers, PSP
    simulator; prints a test secret key for a seeded merchant. Ctrl-C stops it all."""
    settings = Settings()
    with database(settings, migrate=True) as dsn:
        try:
            _run(_dev(settings, dsn))
        except KeyboardInterrupt:
            pass
    typer.echo("kassa stopped")


async def _dev(settings: Settings, dsn: str) -> None:
    import uvicorn

    from kassa import bootstrap
    from kassa.api.app import create_app
    from kassa.psp.simulator.app import create_app as create_simulator
    from kassa.services import merchants
    from kassa.workers import loops

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # signals are handled by _dev
            yield

    settings, sim_config = _dev_simulator(settings)
    kassa, close = await bootstrap.build(settings, dsn)
    seeded = await _seed_merchant(settings, kassa, merchants)
    stop = asyncio.Event()
    sim = Server(uvicorn.Config(create_simulator(sim_config), host=settings.simulator_host,
                                port=settings.simulator_port, log_level="warning",
                                access_log=False, lifespan="off"))

    async def ready() -> dict[str, bool]:
        return {"simulator": sim.started}

    api_server = Server(uvicorn.Config(
        create_app(kassa=kassa, readiness=ready, key_cache_seconds=settings.api_key_cache_seconds),
        host=settings.host, port=settings.port, log_level="warning", access_log=False))
    loop = asyncio.get_running_loop()

    def shutdown() -> None:
        stop.set()
        sim.should_exit = True
        api_server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, shutdown)
    relay = bootstrap.build_relay(settings, kassa)
    sender, close_sender = bootstrap.build_webhook_sender(settings, kassa)
    tasks = [asyncio.create_task(sim.serve()), asyncio.create_task(api_server.serve()),
             asyncio.create_task(loops.run(kassa, interval=settings.recovery_interval_seconds,
                                           stop=stop, relay=relay,
                                           relay_interval=settings.relay_interval_seconds,
                                           webhook_sender=sender,
                                           psp_webhooks_interval=(
                                               settings.psp_webhooks_interval_seconds)))]
    while not (sim.started and api_server.started):
        if any(t.done() for t in tasks):
            break
        await asyncio.sleep(0.05)
    if sim.started and api_server.started:
        bootstrap.tune_gc()
        base = f"http://{settings.host}:{settings.port}"
        typer.echo(
            f"\nkassa is running\n"
            f"  API:        {base}   (docs: {base}/docs, health: {base}/healthz)\n"
            f"  simulator:  {settings.simulator_base_url()}\n"
            f"  database:   {dsn}\n"
            f"  merchant:   {seeded['merchant_id']}\n"
            f"  secret key: {seeded['secret_key']}\n\n"
            f"  curl {base}/v1/payment_intents -u {seeded['secret_key']}: "
            f"-d amount=2000 -d currency=usd -d payment_method=pm_card_visa -d confirm=true\n\n"
            "Press Ctrl-C to stop.", )
    else:
        shutdown()
    try:
        await asyncio.gather(*tasks)
    finally:
        if relay is not None:
            await relay.close()
        await close()


def _dev_simulator(settings: Settings):  # type: ignore[no-untyped-def]
    """The simulator `kassa dev` runs sends signed webhooks to this API; the signing secret
    is shared through the settings (made up for this run when none is configured)."""
    import secrets

    from pydantic import SecretStr

    from kassa.psp.simulator import SimulatorConfig

    if not settings.simulator_webhook_secrets():
        settings = settings.model_copy(
            update={"simulator_webhook_secret": SecretStr(secrets.token_hex(32))})
    url = (settings.simulator_webhook_url
           or f"http://{settings.host}:{settings.port}/psp/simulator/webhooks")
    config = SimulatorConfig(webhook_url=url,
                             webhook_secret=settings.simulator_webhook_secrets()[0])
    return settings, config


async def _seed_merchant(settings: Settings, kassa, merchants) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The dev merchant's key is kept in KASSA_HOME (development only) so that every
    `make run` prints a key that works."""
    path = Path(settings.home) / "dev-merchant.json"
    if path.exists():
        seeded = json.loads(path.read_text())
        from kassa.services.merchants import KeyCache

        if await KeyCache(0).authenticate(kassa, seeded["secret_key"]) is not None:
            return dict(seeded)
    seeded = await merchants.create_merchant(kassa, name="Dev merchant")
    path.write_text(json.dumps(seeded))
    path.chmod(0o600)
    return dict(seeded)


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
