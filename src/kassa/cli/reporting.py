"""How a command that failed ends: one line of cause and one of remedy on stderr and an exit
code (2 for start-up errors), or log lines and the traceback with --debug."""

from __future__ import annotations

import contextlib
import errno
import logging
import sys
from collections.abc import Callable

from kassa.cli.process import say
from kassa.startup_errors import StartupError


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
