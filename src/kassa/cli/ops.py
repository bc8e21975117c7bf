"""The operator's commands: `kassa migrate`, and the merchants, ledger, relay, webhooks and
attempts groups (inspect and repair what the services keep in the database)."""

from __future__ import annotations

import json

import typer

from kassa.cli.database import database, redacted, service_role
from kassa.cli.process import run_async
from kassa.config import Settings

merchants_app = typer.Typer(no_args_is_help=True, help="Manage merchants and their API keys.")
ledger_app = typer.Typer(no_args_is_help=True, help="Inspect and verify the ledger.")
relay_app = typer.Typer(no_args_is_help=True, help="The outbox relay to Kafka.")
webhooks_app = typer.Typer(no_args_is_help=True, help="Merchant webhook deliveries.")
attempts_app = typer.Typer(no_args_is_help=True, help="PSP attempts recovery watches.")


def migrate(grant_to: str = typer.Option(
        None, help="the serving role to grant the services' privileges to (default: "
                   "KASSA_SERVICE_ROLE, else KASSA_DATABASE_URL's user when "
                   "KASSA_MIGRATION_DATABASE_URL logs in as another)")) -> None:
    """Apply database migrations (as the schema owner), one migrator at a time."""
    settings = Settings()
    if grant_to:
        settings = settings.model_copy(update={"service_role": grant_to})
    with database(settings, migrate=True) as dsn:
        role = service_role(settings)
        target = settings.migration_database_url or dsn
        typer.echo(f"migrated {redacted(target)}"
                   + (f"; serving role {role} granted its privileges" if role else ""))


@merchants_app.command("create")
def merchants_create(name: str) -> None:
    """Create a merchant; prints JSON with merchant_id, secret_key and publishable_key
    (shown once)."""
    settings = Settings()
    with database(settings) as dsn:
        typer.echo(json.dumps(run_async(_create_merchant(settings, dsn, name))))


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
        report = run_async(_verify(dsn))
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


@ledger_app.command("checkpoint")
def ledger_checkpoint(wait: float = typer.Option(
        5.0, help="seconds to wait for open transactions below the horizon to finish"),
        max_entries: int = typer.Option(1_000_000, help="entries one run covers at most")
        ) -> None:
    """Roll the balance checkpoints forward to the latest final entry (runs of at most
    --max-entries each); prints each run as JSON."""
    settings = Settings()
    with database(settings) as dsn:
        runs = run_async(_checkpoint(dsn, wait=wait, max_entries=max_entries))
    for run in runs:
        typer.echo(json.dumps(run))
    if not runs:
        typer.echo("no checkpoint written: nothing new is final yet (or another writer "
                   "holds the lock)")


async def _checkpoint(dsn: str, *, wait: float, max_entries: int) -> list[dict[str, object]]:
    from kassa.db.pool import create_pool
    from kassa.ledger import checkpoints

    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        runs: list[dict[str, object]] = []
        while (run := await checkpoints.roll_forward(pool, max_entries=max_entries,
                                                     wait_seconds=wait)) is not None:
            runs.append({"position": run.position, "previous": run.previous,
                         "entries": run.entries, "accounts": run.accounts,
                         "as_of": run.as_of.isoformat() if run.as_of else None})
        return runs
    finally:
        await pool.close()


@relay_app.command("status")
def relay_status() -> None:
    """Each relay's stored position, events published, and backlog (committed, not sent)."""
    settings = Settings()
    with database(settings) as dsn:
        typer.echo(json.dumps(run_async(_relay_status(dsn)), indent=2))


async def _relay_status(dsn: str) -> list[dict[str, object]]:
    from kassa.db import relay as relay_db
    from kassa.db.pool import create_pool

    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        out: list[dict[str, object]] = []
        for row in await relay_db.list_positions(pool):
            position = relay_db.Position(int(row["xid"]), row["seq"])
            out.append({"name": row["name"], "xid": position.xid, "seq": position.seq,
                        "published": row["published"],
                        "backlog": await relay_db.backlog(pool, after=position),
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
        result = run_async(_webhooks(settings, dsn, "redeliver", event_id=event_id,
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
        rows = run_async(_webhooks(settings, dsn, "list-dead", limit=limit, merchant_id=merchant))
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
        rows = run_async(_attempts(dsn, stuck=stuck, limit=limit))
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

    from kassa.db import payments as payments_db

    conn = await asyncpg.connect(dsn)
    try:
        rows = await (payments_db.list_stuck_attempts(conn, limit=limit) if stuck
                      else payments_db.list_waiting_attempts(conn, limit=limit))
    finally:
        await conn.close()
    return [{"id": a.id, "operation": a.operation.value, "status": a.status.value,
             "payment_intent": a.payment_intent_id, "psp": a.psp, "amount": a.amount.minor,
             "currency": a.amount.currency, "tries": a.tries, "created": a.created,
             "error": a.error} for a in rows]
