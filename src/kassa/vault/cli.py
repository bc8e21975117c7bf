"""`kassa vault` (serve the card vault on its own port) and `kassa vault rotate-kek`."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING

import typer

from kassa.cli.database import database
from kassa.cli.process import STOP_SIGNALS, listen, run_async, say
from kassa.config import VAULT_FORWARD_HOST, Settings
from kassa.startup_errors import StartupError

if TYPE_CHECKING:  # the CLI imports the servers only when a command runs
    import uvicorn

Closer = Callable[[], Awaitable[None]]

app = typer.Typer(help="The card vault: raw card numbers, their keys and the forwarding "
                       "endpoint (run `kassa vault` to serve it).")


@app.callback(invoke_without_command=True)
def serve(ctx: typer.Context) -> None:
    """Serve the card vault (KASSA_VAULT_HOST:KASSA_VAULT_PORT; its forwarding endpoint on
    127.0.0.1:KASSA_VAULT_FORWARD_PORT) with its own database role
    (KASSA_VAULT_DATABASE_URL) and key-encryption keys."""
    if ctx.invoked_subcommand is not None:
        return
    settings = Settings()
    token = settings.vault_forward_token()
    if not token:
        raise StartupError("KASSA_VAULT_FORWARD_SECRET is not set",
                           "set it (the same value) for the vault, the API and the workers")
    from kassa.bootstrap import check_checkout_secret

    check_checkout_secret(settings)
    public_sock, forward_sock, settings = vault_sockets(settings)
    try:
        with database(settings) as dsn:
            # the keyring is checked before serving: a wrong one is two lines and exit 2
            run_async(_serve(settings, dsn, public_sock, forward_sock))
    finally:
        public_sock.close()
        forward_sock.close()


def vault_sockets(settings: Settings) -> tuple[socket.socket, socket.socket, Settings]:
    """The vault's two listening sockets, and the settings naming the forward port it got
    (KASSA_VAULT_FORWARD_PORT=0: a free one)."""
    public = listen(settings.vault_host, settings.vault_port, port_setting="KASSA_VAULT_PORT",
                    host_setting="KASSA_VAULT_HOST")
    try:
        # loopback only, whatever KASSA_VAULT_HOST says: nothing off this machine, and no
        # browser on it through the vault's public address, may ask for card numbers
        forward = listen(VAULT_FORWARD_HOST, settings.vault_forward_port,
                         port_setting="KASSA_VAULT_FORWARD_PORT",
                         host_setting="KASSA_VAULT_FORWARD_PORT")
    except BaseException:
        public.close()
        raise
    port = int(forward.getsockname()[1])
    return public, forward, settings.model_copy(update={"vault_forward_port": port})


async def vault_servers(settings: Settings, dsn: str, server_class: type[uvicorn.Server], *,
                        create_keyring: bool = False
                        ) -> tuple[uvicorn.Server, uvicorn.Server, Closer]:
    """The vault built on the running loop, and its public and private (forwarding)
    servers, to be served on vault_sockets(); the closer releases the vault after them."""
    import uvicorn

    from kassa.checkout import tokens
    from kassa.vault.app import create_forward_app, create_vault_app
    from kassa.vault.runtime import build_vault

    token = settings.vault_forward_token()
    assert token is not None
    vault, forwarder, close = await build_vault(settings, dsn, create_keyring=create_keyring)
    public = create_vault_app(
        vault=vault, checkout_keys=tokens.verifying_keys(settings.checkout_token_secrets()),
        key_cache_seconds=settings.api_key_cache_seconds,
        answer_within_seconds=settings.api_answer_within_seconds)
    private = create_forward_app(forwarder=forwarder, forward_token=token,
                                 answer_within_seconds=settings.api_answer_within_seconds)
    servers = tuple(server_class(uvicorn.Config(app, log_level="warning", access_log=False,
                                                lifespan="off", http="httptools"))
                    for app in (public, private))
    return servers[0], servers[1], close


async def _serve(settings: Settings, dsn: str, public_sock: socket.socket,
                 forward_sock: socket.socket) -> None:
    import asyncio

    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # both servers stop on one signal
            yield

    public, private, close = await vault_servers(settings, dsn, Server)

    def shutdown() -> None:
        public.should_exit = private.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, shutdown)
    try:
        tasks = [asyncio.create_task(public.serve(sockets=[public_sock])),
                 asyncio.create_task(private.serve(sockets=[forward_sock]))]
        # one server failing (or stopped) stops the other: never a vault half served
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        shutdown()
        await asyncio.gather(*tasks)
    finally:
        await close()


@app.command("rotate-kek")
def rotate_kek(batch_size: int = typer.Option(500, min=1, max=10_000),
               retire: bool = typer.Option(True, help="retire old versions nothing uses"),
               settle_seconds: float = typer.Option(
                   None, help="wait this long before the last pass (default: "
                              "KASSA_VAULT_KEK_REFRESH_SECONDS, how stale a running vault's "
                              "active version may be)")) -> None:
    """Re-wrap every data key under a new KEK version, online and resumable (run it again
    after an interruption); a file keyring gets the new version appended."""
    settings = Settings()
    with database(settings) as dsn:
        run_async(_rotate(settings, dsn, batch_size=batch_size, retire=retire,
                          settle=settings.vault_kek_refresh_seconds + 1
                          if settle_seconds is None else settle_seconds))


async def _rotate(settings: Settings, dsn: str, *, batch_size: int, retire: bool,
                  settle: float) -> None:
    from kassa.vault import rotation, store
    from kassa.vault.keyring import KeyringError
    from kassa.vault.runtime import build_vault

    vault, _, close = await build_vault(settings, dsn, pool_size=2)
    try:
        active = await vault.active_version(fresh=True)
        newest = max(vault.keys.versions())
        if newest == active:
            pending = {v: n for v, n in (await store.count_by_version(vault.pool)).items()
                       if v != active and n}
            if not pending:  # nothing left of an earlier rotation: start a new one
                try:
                    newest = vault.keys.add_version()  # type: ignore[attr-defined]
                except KeyringError as exc:
                    raise StartupError(str(exc), "then run `kassa vault rotate-kek` again"
                                       ) from None
                say(f"added KEK version {newest} to the keyring")
        say(f"re-wrapping data keys under KEK version {newest} (active was {active})")

        def progress(done: int, total: int) -> None:
            width = 30
            filled = width * done // total if total else width
            say(f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} data keys")

        report = await rotation.rotate(vault, new_version=newest, batch_size=batch_size,
                                       retire=retire, settle_seconds=settle, progress=progress)
        say(f"re-wrapped {report.rewrapped} data keys under KEK version {report.target}")
        for version in report.retired:
            say(f"retired KEK version {version}: no data key uses it")
        for version, using in (report.still_used or {}).items():
            say(f"KEK version {version} still wraps {using} data keys (wrapped meanwhile); "
                "run rotate-kek again to finish")
    finally:
        await close()
