"""`kassa dev`: the whole of kassa in one process tree (embedded PostgreSQL, migrations, API,
workers, PSP simulator) for a developer's machine, stopped as a whole by Ctrl-C, SIGTERM or
a closed terminal (SIGHUP)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

from kassa.cli.database import database, redacted
from kassa.cli.dev_bank import bank_server, bank_socket
from kassa.cli.dev_merchant import seed_dev_merchant
from kassa.cli.process import (
    STOP_SIGNALS,
    listen,
    owned_server_class,
    run_async,
    say,
    stop_on_signals,
)
from kassa.config import Settings
from kassa.startup_errors import StartupError
from kassa.vault.cli import vault_sockets


def command() -> None:
    """Everything in one process tree: embedded PostgreSQL, migrations, API, workers, PSP
    simulator; prints a test secret key for a seeded merchant. Ctrl-C, SIGTERM or closing
    the terminal stops it all."""
    run(Settings())


def run(settings: Settings) -> None:
    stop_on_signals()
    # Ports first: a busy port is one clear line before anything else has started.
    api_sock = listen(settings.host, settings.port, port_setting="KASSA_PORT",
                      host_setting="KASSA_HOST")
    sim_sock = listen(settings.simulator_host, settings.simulator_port,
                      port_setting="KASSA_SIMULATOR_PORT", host_setting="KASSA_SIMULATOR_HOST")
    bank_sock, settings = bank_socket(settings)
    vault_sock, forward_sock, settings = vault_sockets(settings)
    # the workers' metrics (here the same process's as the API's /metrics, so a scrape
    # config written against `kassa dev` works against `kassa worker` too): a free port
    # unless KASSA_WORKER_METRICS_PORT names one
    metrics_sock = listen(settings.worker_metrics_host, settings.worker_metrics_port or 0,
                          port_setting="KASSA_WORKER_METRICS_PORT",
                          host_setting="KASSA_WORKER_METRICS_HOST")
    settings = settings.model_copy(
        update={"worker_metrics_port": int(metrics_sock.getsockname()[1])})
    # KASSA_HOME keeps the dev merchant's key, with the embedded server or without it.
    settings.home.mkdir(parents=True, exist_ok=True)
    try:
        with database(settings, migrate=True) as dsn:
            try:
                run_async(_dev(settings, dsn, api_sock, sim_sock, (vault_sock, forward_sock),
                               bank_sock, metrics_sock))
            except KeyboardInterrupt:
                pass
            finally:
                stop_on_signals()  # the event loop reset them; the database stops next
    finally:
        api_sock.close()
        sim_sock.close()
        vault_sock.close()
        forward_sock.close()
        bank_sock.close()
        metrics_sock.close()
    say("stopped")


async def _dev(settings: Settings, dsn: str, api_sock: socket.socket,
               sim_sock: socket.socket, vault_socks: tuple[socket.socket, socket.socket],
               bank_sock: socket.socket, metrics_sock: socket.socket) -> None:
    import uvicorn

    from kassa import bootstrap
    from kassa.api.app import create_app
    from kassa.psp.simulator.app import create_app as create_simulator
    from kassa.vault.cli import vault_servers
    from kassa.workers import loops
    from kassa.workers.metrics import metrics_server

    Server = owned_server_class()  # signals are handled by _dev
    settings, sim_config = _dev_simulator(settings)
    sim_config, adyen = _dev_adyen(settings, sim_config)
    settings = _dev_vault(settings)
    kassa, close = await bootstrap.build(settings, dsn, adyen=adyen)
    try:
        seeded = await seed_dev_merchant(settings, kassa)
    except BaseException:
        await close()
        raise
    stop = asyncio.Event()
    # the simulator keeps its books next to the database: a restart forgets nothing, as a
    # real PSP would not (else every held payment would be stuck after `kassa dev` restarts)
    sim_app = create_simulator(sim_config, state_path=settings.home / "simulator.sqlite3")
    sim = Server(uvicorn.Config(sim_app, log_level="warning",
                                access_log=False, lifespan="off"))

    # the card vault: its own apps on its own ports, the public one and the loopback-only
    # forwarding one (one database role here, as in all of `kassa dev`; production gives
    # it its own, README "Card vault")
    try:
        vault, vault_forward, close_vault = await vault_servers(settings, dsn, Server,
                                                                create_keyring=True)
    except BaseException:
        await close()
        raise

    bank = bank_server(settings, Server)
    metrics = metrics_server(kassa.router.monitor.registry,  # type: ignore[attr-defined]
                             settings.metrics_bearer(), Server)

    async def ready() -> dict[str, bool]:
        return {"simulator": sim.started, "vault": vault.started and vault_forward.started,
                "bank": bank.started}

    api_server = Server(uvicorn.Config(
        create_app(kassa=kassa, readiness=ready, key_cache_seconds=settings.api_key_cache_seconds),
        log_level="warning", access_log=False))
    loop = asyncio.get_running_loop()

    def shutdown() -> None:
        stop.set()
        sim.should_exit = True
        vault.should_exit = vault_forward.should_exit = True
        bank.should_exit = True
        metrics.should_exit = True
        api_server.should_exit = True

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, shutdown)
    relay = bootstrap.build_relay(settings, kassa)
    sender, close_sender = bootstrap.build_webhook_sender(settings, kassa)
    rail_client = bootstrap.http_client(settings)
    tasks = [asyncio.create_task(sim.serve(sockets=[sim_sock])),
             asyncio.create_task(vault.serve(sockets=[vault_socks[0]])),
             asyncio.create_task(vault_forward.serve(sockets=[vault_socks[1]])),
             asyncio.create_task(bank.serve(sockets=[bank_sock])),
             asyncio.create_task(metrics.serve(sockets=[metrics_sock])),
             asyncio.create_task(api_server.serve(sockets=[api_sock])),
             asyncio.create_task(loops.run(kassa, interval=settings.recovery_interval_seconds,
                                           stop=stop, relay=relay,
                                           relay_interval=settings.relay_interval_seconds,
                                           webhook_sender=sender,
                                           psp_webhooks_interval=(
                                               settings.psp_webhooks_interval_seconds),
                                           payouts=bootstrap.build_payout_rail(
                                               settings, rail_client),
                                           payouts_interval=settings.payouts_interval_seconds,
                                           reconcile_pull=(
                                               bootstrap.settlement_report_sources(
                                                   settings, rail_client, adyen=adyen),
                                               bootstrap.pull_policy(settings)),
                                           reconcile_pull_interval=(
                                               settings.reconcile_pull_interval_seconds)))]
    while not (sim.started and api_server.started and vault.started and vault_forward.started
               and bank.started):
        if any(t.done() for t in tasks) or stop.is_set():
            break
        await asyncio.sleep(0.05)
    started = (sim.started and api_server.started and vault.started and vault_forward.started
               and bank.started)
    if started:
        bootstrap.tune_gc()
        _banner(settings, dsn, seeded)
    else:
        shutdown()
    try:
        await asyncio.gather(*tasks)
    finally:
        if relay is not None:
            await relay.close()
        await close_sender()
        await rail_client.aclose()
        await close()
        await close_vault()
    if not started and not _stopped_by_signal(stop, tasks):
        raise StartupError("the API, the simulator or the vault did not start",
                           "run again with --debug to see why")


def _stopped_by_signal(stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> bool:
    return stop.is_set() and not any(t.done() and t.exception() for t in tasks)


def _banner(settings: Settings, dsn: str, seeded: dict[str, str]) -> None:
    base = f"http://{settings.host}:{settings.port}"
    with contextlib.suppress(OSError):
        print(
            f"\nkassa is running (Ctrl-C stops everything)\n"
            f"  API:        {base}   (docs: {base}/docs, health: {base}/healthz)\n"
            f"  simulator:  {settings.simulator_base_url()}\n"
            f"  vault:      {settings.vault_base_url()}   (POST /v1/payment_methods with "
            f"the publishable key)\n"
            f"  forward:    {settings.vault_forward_url()}   (loopback only: the vault's "
            f"forwarding endpoint for the API and workers)\n"
            f"  bank:       {settings.bank_base_url()}   (payouts)\n"
            f"  metrics:    {base}/metrics   (workers': http://{settings.worker_metrics_host}:"
            f"{settings.worker_metrics_port}/metrics)\n"
            f"  checkout:   {base}/checkout/<payment_intent>?client_secret=<its secret>   "
            f"(kassa.js: {base}/kassa.js)\n"
            f"  database:   {redacted(dsn)}\n"
            f"  merchant:   {seeded['merchant_id']}\n"
            f"  CLI:        {cli_hint()}\n"
            f"  try:        curl {base}/v1/payment_intents -u $SK: -d amount=2000 "
            f"-d currency=usd -d payment_method=pm_card_visa -d confirm=true\n\n"
            + (f"export PK={seeded['publishable_key']}\n" if seeded.get("publishable_key")
               else "")
            + f"export SK={seeded['secret_key']}", flush=True)


def cli_hint() -> str:
    """How to call this very `kassa` from another shell."""
    exe = Path(sys.executable).parent / "kassa"
    found = shutil.which("kassa")
    if found and Path(found).resolve() == exe.resolve():
        return "kassa --help"
    shown = exe
    with contextlib.suppress(ValueError):
        shown = exe.relative_to(Path.cwd())
    activate = exe.parent / "activate"
    if activate.exists():
        return f"{shown} --help   (or: source {shown.parent / 'activate'}, then kassa --help)"
    return f"{shown} --help"


def _dev_vault(settings: Settings) -> Settings:
    """The token the API and workers present to the vault's forwarding endpoint, and the
    secret the checkout tokens are signed with: each made up for this run when none is
    configured."""
    import secrets

    from pydantic import SecretStr

    made: dict[str, SecretStr] = {}
    if not settings.vault_forward_token():
        made["vault_forward_secret"] = SecretStr(secrets.token_hex(32))
    if not settings.checkout_token_secrets():
        made["checkout_token_secret"] = SecretStr(secrets.token_hex(32))
    return settings.model_copy(update=made) if made else settings


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


def _dev_adyen(settings: Settings, config: Any) -> tuple[Any, Any]:
    """Without a real Adyen account (KASSA_ADYEN_API_KEY), `kassa dev` connects its
    ``adyen`` PSP account to the simulator's Adyen dialect: a made-up API key and HMAC key
    for this run, notifications to this API's /psp/adyen/webhooks (KASSA_DEFAULT_PSP=adyen
    sends payments there)."""
    import dataclasses
    import secrets

    from pydantic import SecretStr

    from kassa.psp.adyen import AdyenSettings

    adyen = AdyenSettings()
    if adyen.configured():
        return config, adyen
    base = settings.simulator_base_url()
    adyen = AdyenSettings(api_key=SecretStr(secrets.token_hex(16)),
                          merchant_account="KassaDevECOM",
                          checkout_url=f"{base}/v71",
                          disputes_url=f"{base}/ca/services/DisputeService/v30",
                          hmac_keys=SecretStr(secrets.token_hex(32)))
    assert adyen.api_key is not None and adyen.hmac_keys is not None
    config = dataclasses.replace(
        config, adyen_api_key=adyen.api_key.get_secret_value(),
        adyen_merchant_account=adyen.merchant_account,
        adyen_hmac_key=adyen.hmac_keys.get_secret_value(),
        adyen_webhook_url=f"http://{settings.host}:{settings.port}/psp/adyen/webhooks")
    return config, adyen
