"""The serving commands of a deployment: `kassa api`, `kassa worker`, `kassa simulator`."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

import typer

from kassa.cli.database import database
from kassa.cli.process import check_free, listen, owned_server_class, run_async
from kassa.config import Settings


def api(workers: int = typer.Option(None, help="uvicorn worker processes")) -> None:
    """Serve the HTTP API (stateless; run as many as you like)."""
    import uvicorn

    settings = Settings()
    if settings.vault_forward_token():  # with a vault, the API mints checkout tokens
        from kassa.bootstrap import check_checkout_secret

        check_checkout_secret(settings)
    check_free(settings.host, settings.port, port_setting="KASSA_PORT",
               host_setting="KASSA_HOST")
    with database(settings) as dsn:
        os.environ["KASSA_DATABASE_URL"] = dsn
        uvicorn.run("kassa.api.main:app_factory", factory=True, host=settings.host,
                    port=settings.port, workers=workers or settings.api_workers, loop="uvloop",
                    http="httptools", log_level="warning", access_log=False)


ROLE_OPTION = typer.Option(None, help="recovery, availability, idempotency-expiry, relay, "
                                         "webhooks, psp-webhooks, payouts, payout-schedule, "
                                         "reconcile-pull, ledger-checkpoints (default: all; "
                                         "relay only with "
                                         "KASSA_KAFKA_BOOTSTRAP)")


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
    # a busy metrics port is one clear line before anything has started
    metrics_sock = None if settings.worker_metrics_port is None else listen(
        settings.worker_metrics_host, settings.worker_metrics_port,
        port_setting="KASSA_WORKER_METRICS_PORT", host_setting="KASSA_WORKER_METRICS_HOST")
    try:
        with database(settings) as dsn:
            run_async(_worker(settings, dsn, roles, metrics_sock))
    finally:
        if metrics_sock is not None:
            metrics_sock.close()


async def _worker(settings: Settings, dsn: str, roles: tuple[str, ...],
                  metrics_sock: socket.socket | None) -> None:
    from kassa import bootstrap
    from kassa.workers import loops
    from kassa.workers.metrics import metrics_server

    kassa, close = await bootstrap.build(settings, dsn, pool_size=4)
    bootstrap.tune_gc()
    relay = bootstrap.build_relay(settings, kassa) if "relay" in roles else None
    sender = close_sender = None
    if "webhooks" in roles:
        sender, close_sender = bootstrap.build_webhook_sender(settings, kassa)
    rail_client = bootstrap.http_client(settings) if "payouts" in roles else None
    payouts = bootstrap.build_payout_rail(settings, rail_client) if rail_client else None
    report_client = bootstrap.http_client(settings) if "reconcile-pull" in roles else None
    pull = ((bootstrap.settlement_report_sources(settings, report_client),
             bootstrap.pull_policy(settings)) if report_client else None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    metrics = serving = None
    if metrics_sock is not None:  # this process's PSP calls, for Prometheus
        metrics = metrics_server(kassa.router.monitor.registry,  # type: ignore[attr-defined]
                                 settings.metrics_bearer(), owned_server_class())
        serving = asyncio.create_task(metrics.serve(sockets=[metrics_sock]))
    try:
        await loops.run(kassa, roles=roles, interval=settings.recovery_interval_seconds,
                        stop=stop, relay=relay, relay_interval=settings.relay_interval_seconds,
                        webhook_sender=sender,
                        psp_webhooks_interval=settings.psp_webhooks_interval_seconds,
                        payouts=payouts, payouts_interval=settings.payouts_interval_seconds,
                        payout_schedule_interval=settings.payout_schedule_interval_seconds,
                        reconcile_pull=pull,
                        reconcile_pull_interval=settings.reconcile_pull_interval_seconds)
    finally:
        if metrics is not None and serving is not None:
            metrics.should_exit = True
            await serving
        if report_client is not None:
            await report_client.aclose()
        if rail_client is not None:
            await rail_client.aclose()
        if relay is not None:
            await relay.close()
        if close_sender is not None:
            await close_sender()
        await close()


STATE_OPTION = typer.Option(None, help="SQLite file keeping its books across restarts "
                                       "(default: KASSA_HOME/simulator.sqlite3)")


def simulator(port: int = typer.Option(None), host: str = typer.Option(None),
              webhook_url: str = typer.Option(
                  None, help="where to send webhooks, e.g. http://127.0.0.1:8000/psp/simulator/"
                             "webhooks (default: KASSA_SIMULATOR_WEBHOOK_URL)"),
              adyen_webhook_url: str = typer.Option(
                  None, help="where its Adyen dialect sends notifications, e.g. "
                             "http://127.0.0.1:8000/psp/adyen/webhooks"),
              state: Path = STATE_OPTION,
              memory: bool = typer.Option(False, help="keep nothing across restarts")) -> None:
    """Serve the PSP simulator on its own (signing webhooks with
    KASSA_SIMULATOR_WEBHOOK_SECRET; its Adyen dialect takes KASSA_ADYEN_API_KEY,
    KASSA_ADYEN_MERCHANT_ACCOUNT and the first of KASSA_ADYEN_HMAC_KEYS)."""
    from kassa.psp.adyen import AdyenSettings
    from kassa.psp.simulator import SimulatorConfig
    from kassa.psp.simulator.server import serve

    settings = Settings()
    check_free(host or settings.simulator_host, port or settings.simulator_port,
               port_setting="KASSA_SIMULATOR_PORT" if port is None else "--port",
               host_setting="KASSA_SIMULATOR_HOST" if host is None else "--host")
    secrets = settings.simulator_webhook_secrets()
    adyen = AdyenSettings()
    hmac_keys = adyen.hmac_keys.get_secret_value().split(",") if adyen.hmac_keys else []
    config = SimulatorConfig(webhook_url=webhook_url or settings.simulator_webhook_url,
                             webhook_secret=secrets[0] if secrets else None,
                             adyen_api_key=adyen.api_key.get_secret_value()
                             if adyen.api_key else None,
                             adyen_merchant_account=adyen.merchant_account,
                             adyen_hmac_key=hmac_keys[0].strip() if hmac_keys else None,
                             adyen_webhook_url=adyen_webhook_url)
    state_path = None if memory else (state or settings.home / "simulator.sqlite3")
    serve(host or settings.simulator_host, port or settings.simulator_port, config,
          state_path=state_path)
