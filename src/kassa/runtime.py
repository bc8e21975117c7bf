"""How kassa's commands start and stop: the database they use (migrated or checked), listening
sockets, termination signals, and start-up errors reported as one line of cause and one of
remedy (the traceback only with --debug)."""

from __future__ import annotations

import contextlib
import errno
import logging
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from types import FrameType

import typer

from kassa.config import Settings
from kassa.startup_errors import StartupError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def say(line: str) -> None:
    """A notice on stderr; a terminal that went away (SIGHUP) must not stop the shutdown."""
    with contextlib.suppress(OSError):
        typer.echo(f"kassa: {line}", err=True)


def redacted(dsn: str) -> str:
    """A database URL fit to print: its password replaced by ***."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@",
                                                                 ":***@")))


# -- signals ----------------------------------------------------------------------------------

class _Deferred:
    received: int | None = None


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP (terminal closed) end the command the way Ctrl-C does, so `finally`
    blocks run and what it started is stopped. An asyncio loop may install its own handlers
    meanwhile (and resets them to the default when it closes): call this again after it."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _interrupt)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Starting or stopping a server must not be cut in half (a half-started server is
    left running, owned by nobody): a stop signal received meanwhile takes effect after."""
    deferred = _Deferred()

    def note(signum: int, frame: FrameType | None) -> None:
        deferred.received = signum

    previous = {sig: signal.signal(sig, note) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if deferred.received is not None:
            raise KeyboardInterrupt(signal.Signals(deferred.received).name)


# -- the database -----------------------------------------------------------------------------

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


# -- listening sockets ------------------------------------------------------------------------

def port_in_use(host: str, port: int, setting: str) -> StartupError:
    return StartupError(f"port {port} on {host} is already in use ({setting})",
                        f"stop what listens there, or set {setting} to a free port")


def listen(host: str, port: int, *, port_setting: str, host_setting: str) -> socket.socket:
    """A bound TCP socket for a server, or a StartupError naming the setting to change."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise StartupError(f"cannot listen on host {host!r} ({host_setting}): {exc.strerror}",
                           f"set {host_setting} to an address of this machine") from exc
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise port_in_use(host, port, port_setting) from exc
        if exc.errno == errno.EACCES:
            raise StartupError(f"not allowed to listen on port {port} ({port_setting})",
                               f"set {port_setting} to a port above 1023") from exc
        raise StartupError(f"cannot listen on {host}:{port} ({host_setting}, {port_setting}): "
                           f"{exc.strerror}", f"check {host_setting} and {port_setting}"
                           ) from exc
    return sock


def check_free(host: str, port: int, *, port_setting: str, host_setting: str) -> None:
    """For servers that bind their own socket (uvicorn with worker processes)."""
    listen(host, port, port_setting=port_setting, host_setting=host_setting).close()


# -- reporting --------------------------------------------------------------------------------

def explain(exc: BaseException) -> tuple[str, str, int]:
    """(cause, remedy, exit code) for an exception that ended a command."""
    import pydantic

    if isinstance(exc, StartupError):
        return exc.cause, exc.remedy, exc.exit_code
    if isinstance(exc, pydantic.ValidationError):
        err = exc.errors()[0]
        name = "KASSA_" + str(err["loc"][0]).upper() if err["loc"] else "a KASSA_ setting"
        return f"invalid setting {name}: {err['msg']}", f"fix or unset {name}", 2
    if _is_bad_url(exc):
        return (f"the database URL is not valid: {str(exc).strip().splitlines()[0]}",
                "set KASSA_DATABASE_URL to postgresql://user[:password]@host[:port]/database", 2)
    if _is_connection_error(exc):
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return (f"cannot connect to the database: {first}",
                "check KASSA_DATABASE_URL (is PostgreSQL running and reachable?)", 2)
    first = (str(exc).strip().splitlines() or [""])[0]
    return (f"unexpected error: {type(exc).__name__}: {first}",
            "run again with --debug for the traceback", 1)


def _is_bad_url(exc: BaseException) -> bool:
    import psycopg

    return isinstance(exc, psycopg.ProgrammingError) and (
        "dsn" in str(exc) or "connection" in str(exc) or "URI" in str(exc))


def _is_connection_error(exc: BaseException) -> bool:
    import psycopg

    if isinstance(exc, psycopg.OperationalError | ConnectionError | TimeoutError):
        return True
    with contextlib.suppress(ImportError):
        import asyncpg

        if isinstance(exc, asyncpg.exceptions.PostgresConnectionError
                      | asyncpg.exceptions.InvalidAuthorizationSpecificationError
                      | asyncpg.exceptions.InvalidCatalogNameError):
            return True
    return isinstance(exc, OSError) and exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH)


def run_command(invoke: Callable[[list[str]], object], argv: list[str]) -> int:
    """Run the CLI; `--debug` (anywhere on the line, or KASSA_DEBUG=1) shows log lines and
    tracebacks, otherwise a failure is two lines on stderr."""
    import os

    debug = "--debug" in argv or os.environ.get("KASSA_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    if debug:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
        invoke(argv)
        return 0
    try:
        invoke(argv)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place that turns errors into two lines
        cause, remedy, code = explain(exc)
        say(cause)
        say(remedy)
        return code
    return 0


def main_entry(invoke: Callable[[list[str]], object]) -> None:
    sys.exit(run_command(invoke, sys.argv[1:]))
