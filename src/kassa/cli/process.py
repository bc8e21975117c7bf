"""How a command's process starts and stops: termination signals, listening sockets, the event
loop it runs on, and notices on stderr."""

from __future__ import annotations

import contextlib
import errno
import signal
import socket
from collections.abc import Coroutine, Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from kassa.startup_errors import StartupError

if TYPE_CHECKING:  # `kassa --help` loads no server code (tests/unit/test_cli_commands.py)
    import uvicorn

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

T = TypeVar("T")


def say(line: str) -> None:
    """A notice on stderr; a terminal that went away (SIGHUP) must not stop the shutdown."""
    with contextlib.suppress(OSError):
        typer.echo(f"kassa: {line}", err=True)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine to completion on uvloop (as the servers do)."""
    import uvloop

    return uvloop.run(coro)


def owned_server_class() -> type[uvicorn.Server]:
    """uvicorn's Server for a command that owns its signals (and stops its servers with
    ``should_exit``): uvicorn would otherwise take SIGINT/SIGTERM from the command."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return Server


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
