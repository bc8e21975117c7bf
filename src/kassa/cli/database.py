"""The database a command uses: KASSA_DATABASE_URL, or the embedded server under KASSA_HOME
started (or adopted) for the command and stopped after it; migrated or checked current."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from kassa.cli.process import port_in_use, say, signals_deferred, stop_on_signals
from kassa.config import Settings
from kassa.startup_errors import StartupError


def redacted(dsn: str) -> str:
    """A database URL fit to print: its password replaced by ***."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@",
                                                                 ":***@")))


def service_role(settings: Settings) -> str | None:
    """The role `kassa migrate` grants the services' privileges to: KASSA_SERVICE_ROLE, else
    KASSA_DATABASE_URL's user when the migration URL logs in as someone else."""
    from kassa.db.migrate import role_of

    if settings.service_role:
        return settings.service_role
    if settings.migration_database_url and settings.database_url:
        serving = role_of(settings.database_url)
        if serving and serving != role_of(settings.migration_database_url):
            return serving
    return None


def vault_role(settings: Settings) -> str | None:
    """The role `kassa migrate` grants the vault's privileges to: KASSA_VAULT_ROLE, else
    KASSA_VAULT_DATABASE_URL's user when it is neither the migration nor the serving role."""
    from kassa.db.migrate import role_of

    if settings.vault_role:
        return settings.vault_role
    if settings.vault_database_url:
        role = role_of(settings.vault_database_url)
        others = {role_of(u) for u in (settings.migration_database_url or settings.database_url,
                                       settings.database_url) if u}
        if role and role not in others:
            return role
    return None


@contextlib.contextmanager
def database(settings: Settings, *, migrate: bool = False) -> Iterator[str]:
    """KASSA_DATABASE_URL when set; otherwise the embedded server under KASSA_HOME (started
    if needed, or adopted when left over by a crash, and then stopped again on exit). With
    `migrate` (only `kassa migrate` and `kassa dev`) the schema is brought up to date under
    the migration lock; otherwise a schema behind this code is refused."""
    from kassa.db.migrate import migrate as run_migrations
    from kassa.db.migrate import require_current

    embedded = None
    if settings.database_url:
        dsn = settings.database_url
        migration_dsn = settings.migration_database_url or dsn
    else:
        if settings.migration_database_url:
            raise StartupError("KASSA_MIGRATION_DATABASE_URL is set but KASSA_DATABASE_URL "
                               "is not", "set both (your own PostgreSQL), or neither (embedded)")
        stop_on_signals()  # SIGTERM/SIGHUP unwind through `finally`, which stops the server
        embedded = _embedded(settings)
        migration_dsn = dsn = embedded.dsn
    try:
        if migrate:
            run_migrations(migration_dsn, service_role=service_role(settings), on_wait=lambda
                           pid: say(f"waiting for another migration (pid {pid}) to finish"))
            from kassa.vault import roles

            roles.grant(migration_dsn, vault_role=vault_role(settings),
                        service_role=service_role(settings))
        else:
            require_current(dsn)
        yield dsn
    finally:
        if embedded is not None:
            with signals_deferred():
                embedded.stop()


def _embedded(settings: Settings):  # type: ignore[no-untyped-def]
    from kassa.db.embedded import EmbeddedPostgres, PortInUse

    settings.home.mkdir(parents=True, exist_ok=True)
    embedded = EmbeddedPostgres(settings.home.resolve() / "pgdata",
                                port=settings.embedded_db_port)
    try:
        try:
            with signals_deferred():
                embedded.start()
        except KeyboardInterrupt:  # asked to stop while starting: stop what did start
            with signals_deferred():
                embedded.stop()
            raise
    except PortInUse as exc:
        raise port_in_use("127.0.0.1", exc.port, "KASSA_EMBEDDED_DB_PORT") from exc
    except RuntimeError as exc:
        raise StartupError(f"the embedded PostgreSQL did not start: "
                           f"{str(exc).splitlines()[0]}",
                           f"see {embedded.log_path}, or run again with --debug") from exc
    if embedded.elsewhere:
        say(f"the embedded server's files are in {embedded.data_dir} (its OS user cannot "
            f"reach {embedded.requested_dir.parent})")
    if embedded.adopted is not None:
        say(f"adopted the PostgreSQL left running by an earlier run (pid "
            f"{embedded.adopted.pid}, port {embedded.adopted.port}); it stops with this one")
    return embedded
