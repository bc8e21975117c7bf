"""`kassa vault` (serve the card vault on its own port) and `kassa vault rotate-kek`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from kassa.cli.database import database
from kassa.cli.process import check_free, run_async, say
from kassa.config import Settings
from kassa.startup_errors import StartupError

if TYPE_CHECKING:  # the CLI imports the app only when a command runs
    from fastapi import FastAPI

app = typer.Typer(help="The card vault: raw card numbers, their keys and the forwarding "
                       "endpoint (run `kassa vault` to serve it).")


@app.callback(invoke_without_command=True)
def serve(ctx: typer.Context) -> None:
    """Serve the card vault (KASSA_VAULT_HOST:KASSA_VAULT_PORT) with its own database role
    (KASSA_VAULT_DATABASE_URL) and key-encryption keys."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    settings = Settings()
    token = settings.vault_forward_token()
    if not token:
        raise StartupError("KASSA_VAULT_FORWARD_SECRET is not set",
                           "set it (the same value) for the vault, the API and the workers")
    check_free(settings.vault_host, settings.vault_port, port_setting="KASSA_VAULT_PORT",
               host_setting="KASSA_VAULT_HOST")
    with database(settings) as dsn:
        # the keyring checked before serving: a wrong one is two lines and exit 2, not a
        # traceback from the server's start-up
        run_async(_preflight(settings, dsn))
        uvicorn.run(vault_asgi_app(settings, dsn, token), host=settings.vault_host,
                    port=settings.vault_port, loop="uvloop", http="httptools",
                    log_level="warning", access_log=False)


async def _preflight(settings: Settings, dsn: str) -> None:
    from kassa.vault.runtime import build_vault

    _, _, close = await build_vault(settings, dsn, pool_size=1)
    await close()


def vault_asgi_app(settings: Settings, dsn: str, token: str, *, create_keyring: bool = False
                   ) -> FastAPI:
    from kassa.vault.app import create_vault_app
    from kassa.vault.runtime import build_vault

    return create_vault_app(
        forward_token=token, key_cache_seconds=settings.api_key_cache_seconds,
        answer_within_seconds=settings.api_answer_within_seconds,
        lifespan_vault=lambda: build_vault(settings, dsn, create_keyring=create_keyring))


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
