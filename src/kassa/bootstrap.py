"""The composition root: the only place that wires concrete adapters into services."""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
from httpx_aiohttp import AiohttpTransport
from pydantic import SecretStr

from kassa import secrets_box
from kassa.api.errors import render
from kassa.checkout import tokens as checkout_tokens
from kassa.config import Settings
from kassa.db.batch_writer import BatchWriter
from kassa.db.pool import create_pool
from kassa.domain.fees import FeeSchedule
from kassa.events.relay import Relay
from kassa.payouts.base import PayoutAdapter
from kassa.psp.accounts import MerchantAccounts, adyen_live
from kassa.psp.adyen import AdyenAdapter, AdyenSettings
from kassa.psp.base import PSPAdapter, SettlementReportSource
from kassa.psp.breaker import BreakerPolicy
from kassa.psp.monitor import MonitoredAdapter, PSPMonitor
from kassa.psp.policy_router import PolicyRouter
from kassa.psp.router import PSPAccount, PSPRegistry
from kassa.psp.simulator.adapter import SimulatorAdapter
from kassa.psp.stripe import StripeAdapter, StripeSettings
from kassa.services.context import CheckoutSettings, FxPolicy, Kassa, WatchPolicy, unix_now
from kassa.services.payout_rail import RailPolicy
from kassa.services.reconciliation_pull import PullPolicy
from kassa.services.webhooks import WebhookPolicy
from kassa.startup_errors import StartupError
from kassa.vault.resolver import PaymentMethodResolver
from kassa.vault.transport import VaultForwardingTransport
from kassa.webhooks.delivery import WebhookSender

Closer = Callable[[], Awaitable[None]]


def http_client(settings: Settings) -> httpx.AsyncClient:
    """The outbound client for PSP calls. httpx's API, aiohttp's connection pool: httpcore's
    pool cost ~3 ms of CPU per call under concurrency here (pool scans, anyio wrappers) and
    capped the whole payment path near 220/s on two cores."""
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
    transport: httpx.AsyncBaseTransport = AiohttpTransport(limits=limits)
    token = settings.vault_forward_token()
    if token:  # requests carrying card placeholders go through the vault (ARCHITECTURE §8)
        transport = VaultForwardingTransport(transport, forward_url=settings.vault_forward_url(),
                                             token=token)
    return httpx.AsyncClient(transport=transport, timeout=settings.psp_timeout_seconds)


def checkout_settings(settings: Settings) -> CheckoutSettings | None:
    """The hosted checkout page posts cards to the vault: only with a vault to post to and
    a secret to sign its tokens with (`kassa api` refuses to start without one outside
    development: check_checkout_secret)."""
    secrets = settings.checkout_token_secrets()
    if not settings.vault_forward_token() or not secrets:
        return None
    return CheckoutSettings(vault_url=settings.vault_browser_url(),
                            token_key=checkout_tokens.signing_key(secrets[0]))


def check_checkout_secret(settings: Settings) -> None:
    """For the processes that sign (the API, with a vault) or verify (the vault) checkout
    tokens: a missing or reused secret is a start-up error, not a checkout that fails."""
    refusal = settings.checkout_token_refusal()
    if refusal is not None:
        raise StartupError(refusal, "set KASSA_CHECKOUT_TOKEN_SECRET (the same value) for the "
                                    "API and the vault: openssl rand -hex 32")


def file_clock(path: Path) -> Callable[[], int]:
    """settings.test_clock_file: the unix time the file holds, read at each call (a test
    replaces the file to move every process's day forward at once)."""
    def now() -> int:
        return int(path.read_text().strip())
    return now


def tune_gc() -> None:
    """Call once a long-running process has built everything it keeps (app, pools, codecs).

    CPython's full (oldest generation) collection walks every tracked object; in the API
    that is ~150,000 objects of FastAPI, pydantic and module state, and each pass paused
    all requests for 70-110 ms every few seconds under load (measured with gc.callbacks).
    gc.freeze() moves what exists now out of the collector's sight for good, and a larger
    young-generation threshold runs the cheap collections less often. Cycles created later
    are still collected."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


def psp_monitor(settings: Settings) -> PSPMonitor:
    """Per-process measurements of PSP calls: /metrics, breakers, success-rate windows."""
    return PSPMonitor(breaker=BreakerPolicy(
        window_seconds=settings.breaker_window_seconds,
        min_volume=settings.breaker_min_volume,
        failure_ratio=settings.breaker_failure_ratio,
        cooldown_seconds=settings.breaker_cooldown_seconds,
        probes=settings.breaker_probes,
        slow_call_seconds=settings.breaker_slow_call_seconds))


def psp_registry(settings: Settings, client: httpx.AsyncClient, *,
                 stripe: StripeSettings | None = None,
                 adyen: AdyenSettings | None = None,
                 monitor: PSPMonitor | None = None) -> PSPRegistry:
    """Every configured PSP account: the built-in simulator always (and the accounts of
    KASSA_SIMULATOR_ACCOUNTS), the platform's Stripe account (``stripe``) when
    KASSA_STRIPE_SECRET_KEY is set, its Adyen account (``adyen``) when KASSA_ADYEN_API_KEY
    is set. With ``monitor`` every call is measured."""
    simulators = [("simulator", settings.simulator_base_url()),
                  *settings.extra_simulator_accounts()]
    accounts = [PSPAccount(
        name=name, psp="simulator",
        adapter=SimulatorAdapter(
            client, url, name=name, timeout=settings.psp_timeout_seconds,
            webhook_secrets=settings.simulator_webhook_secrets(),
            webhook_tolerance_s=settings.psp_webhook_tolerance_seconds),
        hold_validity_seconds=settings.simulator_hold_validity_seconds)
        for name, url in simulators]
    stripe = stripe if stripe is not None else StripeSettings()
    if stripe.live() and settings.env != "production":
        raise ValueError("KASSA_STRIPE_SECRET_KEY is a live key; it is refused unless "
                         "KASSA_ENV=production")
    if stripe.configured():
        accounts.append(PSPAccount(
            name="stripe", psp="stripe",
            adapter=StripeAdapter(client, stripe, timeout=settings.psp_timeout_seconds),
            hold_validity_seconds=stripe.hold_validity_seconds))
    adyen = adyen if adyen is not None else AdyenSettings()
    if adyen.configured():
        accounts.append(adyen_account(settings, client, adyen))
    if monitor is not None:
        accounts = [replace(a, adapter=MonitoredAdapter(a.adapter, monitor)) for a in accounts]
    return PSPRegistry(accounts)


def adyen_account(settings: Settings, client: httpx.AsyncClient,
                  adyen: AdyenSettings) -> PSPAccount:
    """The platform's Adyen account; a live one only in production, and never without the
    merchant account and the webhook's HMAC key (unverifiable notifications)."""
    if adyen.live and settings.env != "production":
        raise ValueError("KASSA_ADYEN_LIVE is set; a live Adyen account is refused unless "
                         "KASSA_ENV=production")
    if adyen.merchant_account is None:
        raise ValueError("KASSA_ADYEN_API_KEY is set without KASSA_ADYEN_MERCHANT_ACCOUNT")
    if not adyen.keys():
        raise ValueError("KASSA_ADYEN_API_KEY is set without KASSA_ADYEN_HMAC_KEYS (the "
                         "webhook's HMAC key): Adyen's notifications could not be verified")
    return PSPAccount(name="adyen", psp="adyen",
                      adapter=AdyenAdapter(client, adyen, timeout=settings.psp_timeout_seconds),
                      hold_validity_seconds=adyen.hold_validity_seconds)


def secrets(settings: Settings) -> secrets_box.SecretsBox | None:
    """The key merchants' PSP credentials are sealed with; outside production a key file is
    made under KASSA_HOME when none is configured (the vault KEK's way: `kassa dev` and
    `make run` need no setup step). In production without one, psp_accounts are refused."""
    try:
        return secrets_box.load(keys=settings.secrets_keys, key_file=settings.secrets_key_path(),
                                create=settings.env != "production")
    except (secrets_box.SecretsBoxError, OSError) as exc:
        raise StartupError(f"the secrets keys: {exc}",
                           "set KASSA_SECRETS_KEYS to v1:<base64 of 32 random bytes> or "
                           "KASSA_SECRETS_KEY_FILE to a file of such lines") from None


def _secret(value: str | None) -> SecretStr | None:
    return None if not value else SecretStr(value)


def stripe_account_lookup(client: httpx.AsyncClient, timeout: float
                          ) -> Callable[[str, str], Awaitable[str]]:
    """Which Stripe account a key belongs to (GET /v1/account through kassa's PSP client)."""
    from kassa.psp.stripe.account import account_of

    async def lookup(api_key: str, api_base: str) -> str:
        return await account_of(client, api_key=api_key, api_base=api_base,
                                request_timeout=timeout)

    return lookup


def account_adapter_factory(settings: Settings, client: httpx.AsyncClient,
                            monitor: PSPMonitor | None
                            ) -> Callable[[Mapping[str, Any], Mapping[str, Any]], PSPAdapter]:
    """Builds a merchant's PSP account's adapter from its row and opened credentials; named
    by the account id (its attempts' ``psp``, its ledger receivable, its webhook URL)."""
    timeout = settings.psp_timeout_seconds

    def build_adapter(row: Mapping[str, Any], credentials: Mapping[str, Any]) -> PSPAdapter:
        name, options = row["id"], row["settings"]
        adapter: PSPAdapter
        if row["psp"] == "simulator":
            secret = credentials.get("webhook_secret")
            adapter = SimulatorAdapter(
                client, options["base_url"], name=name, timeout=timeout,
                webhook_secrets=[secret] if secret else [],
                webhook_tolerance_s=settings.psp_webhook_tolerance_seconds)
        elif row["psp"] == "stripe":
            # model_construct: nothing read from the environment, so no platform setting
            # (KASSA_STRIPE_WEBHOOK_SECRET …) ever applies to a merchant's account
            adapter = StripeAdapter(client, StripeSettings.model_construct(
                secret_key=SecretStr(credentials["api_key"]),
                api_base=options.get("base_url") or "https://api.stripe.com",
                webhook_secret=_secret(credentials.get("webhook_secret")),
                localstripe=settings.psp_accounts_localstripe),
                name=name, timeout=timeout)
        elif row["psp"] == "adyen":
            adapter = AdyenAdapter(client, AdyenSettings.model_construct(
                api_key=SecretStr(credentials["api_key"]),
                merchant_account=options["merchant_account"],
                checkout_url=options.get("base_url") or "https://checkout-test.adyen.com/v71",
                hmac_keys=SecretStr(",".join(credentials["hmac_keys"])),
                live=adyen_live(options.get("base_url"))), name=name, timeout=timeout)
        else:
            raise ValueError(f"PSP account {name}: unknown psp {row['psp']!r}")
        return adapter if monitor is None else MonitoredAdapter(adapter, monitor)

    return build_adapter


async def build(settings: Settings, dsn: str, *, pool_size: int | None = None,
                http: httpx.AsyncClient | None = None,
                stripe: StripeSettings | None = None,
                adyen: AdyenSettings | None = None) -> tuple[Kassa, Closer]:
    size = pool_size or settings.db_pool_size
    # Every query the services run finds its rows through an index. A prepared statement's
    # plan is cached for the connection's life; planned on a fresh deploy (tables empty,
    # statistics saying so) it would be a sequential scan, re-run against an ever larger
    # table until autovacuum's first ANALYZE (tests/integration/test_fresh_deploy_plans.py).
    # Measured on a fresh deploy: 450/s fell to 200/s within half a minute, 55 million rows
    # read by sequential scans; with the setting 626-759/s and no sequential scan at all.
    # Off, PostgreSQL scans a whole table only where no index can serve the query.
    # (`kassa ledger verify` and other reports use pools of their own, without this.)
    pool = await create_pool(dsn, min_size=min(2, size), max_size=size,
                             server_settings={"enable_seqscan": "off"})
    client = http or http_client(settings)
    monitor = psp_monitor(settings)
    box = secrets(settings)
    stripe = stripe if stripe is not None else StripeSettings()
    if stripe.configured() and not stripe.localstripe and stripe.secret_key is not None:
        # a rotated key must be of the same Stripe account (services/stripe_binding.py);
        # localstripe has no /v1/account (psp/stripe/account.py)
        from kassa.services import stripe_binding

        try:
            await stripe_binding.bind_platform(
                pool, stripe_account_lookup(client, settings.psp_timeout_seconds),
                api_key=stripe.secret_key.get_secret_value(), api_base=stripe.api_base)
        except BaseException:
            if http is None:
                await client.aclose()
            await pool.close()
            raise
    psps = psp_registry(settings, client, stripe=stripe, adyen=adyen,
                        monitor=monitor)
    psps.merchant_accounts = MerchantAccounts(
        pool, box, account_adapter_factory(settings, client, monitor),
        cache_seconds=settings.routing_cache_seconds)
    router = PolicyRouter(psps, settings.default_psp, pool=pool, monitor=monitor,
                          exploration_percent=settings.routing_exploration_percent,
                          cache_seconds=settings.routing_cache_seconds)
    kassa = Kassa(
        pool=pool, psps=psps, router=router,
        payment_methods=PaymentMethodResolver(pool),
        fees=FeeSchedule(settings.fee_percent_bps, settings.fee_fixed_cents),
        platform_account=settings.platform_account,
        idempotency_lock_timeout_seconds=settings.idempotency_lock_timeout_seconds,
        idempotency_retention_hours=settings.idempotency_retention_hours,
        recovery_after_seconds=settings.recovery_after_seconds,
        watch=WatchPolicy(
            pending_poll_seconds=settings.pending_poll_seconds,
            action_poll_seconds=settings.action_poll_seconds,
            action_expiry_seconds=settings.action_expiry_seconds,
            backoff_cap_seconds=settings.recovery_backoff_cap_seconds,
            max_tries=settings.recovery_max_tries,
            # a claimed attempt may need a status query and a repeated call
            lease_seconds=2 * settings.psp_timeout_seconds + 30.0,
            hold_validity_seconds=psps.hold_validity_seconds()),
        render=render,
        public_url=settings.public_base_url(),
        checkout=checkout_settings(settings),
        clock=unix_now if settings.test_clock_file is None else file_clock(
            settings.test_clock_file),
        secrets=box, production=settings.env == "production",
        platform_psp_tokens=settings.psp_tokens_on_platform_accounts,
        stripe_account_of=None if settings.psp_accounts_localstripe else
        stripe_account_lookup(client, settings.psp_timeout_seconds),
        fx=FxPolicy(max_age_seconds=settings.fx_max_age_seconds,
                    cache_seconds=settings.fx_settings_cache_seconds,
                    reconcile_band=settings.fx_reconcile_band),
    )
    if settings.db_write_batch > 1:
        kassa.writer = BatchWriter(pool, max_batch=settings.db_write_batch,
                                   max_inflight=settings.db_write_flushes)

    async def close() -> None:
        if isinstance(kassa.writer, BatchWriter):
            await kassa.writer.close()
        if http is None:
            await client.aclose()
        await pool.close()

    return kassa, close


def build_payout_rail(settings: Settings, client: httpx.AsyncClient
                      ) -> tuple[PayoutAdapter, RailPolicy]:
    """The payout rail the payouts worker sends through (the bank simulator's adapter; a
    real bank's or PSP's payout API implements the same protocol), and its pacing."""
    from kassa.payouts.bank_simulator import BankSimulatorAdapter

    policy = RailPolicy(poll_s=settings.payout_poll_seconds,
                        backoff_cap_s=settings.payout_poll_cap_seconds,
                        return_watch_s=settings.payout_return_watch_days * 86_400,
                        lease_s=2 * settings.psp_timeout_seconds + 60.0)
    return BankSimulatorAdapter(client, settings.bank_base_url()), policy


def settlement_report_sources(settings: Settings, client: httpx.AsyncClient, *,
                              stripe: StripeSettings | None = None,
                              adyen: AdyenSettings | None = None
                              ) -> dict[str, SettlementReportSource]:
    """Where the daily pull downloads each PSP account's settlement report: every simulator
    account from its own API; Stripe's Reporting API when Stripe is configured (and its
    reports are not turned off); Adyen's report URL when KASSA_ADYEN_SETTLEMENT_REPORT_URL
    is set."""
    from kassa.psp.adyen.reports import AdyenSettlementReports
    from kassa.psp.simulator.reports import SimulatorSettlementReports
    from kassa.psp.stripe.reports import StripeSettlementReports

    sources: dict[str, SettlementReportSource] = {
        name: SimulatorSettlementReports(client, url) for name, url in
        [("simulator", settings.simulator_base_url()), *settings.extra_simulator_accounts()]}
    stripe = stripe if stripe is not None else StripeSettings()
    if stripe.configured() and stripe.settlement_reports:
        sources["stripe"] = StripeSettlementReports(client, stripe)
    adyen = adyen if adyen is not None else AdyenSettings()
    if adyen.configured() and adyen.settlement_report_url:
        if not adyen.report_username or adyen.report_password is None:
            raise ValueError("KASSA_ADYEN_SETTLEMENT_REPORT_URL is set without "
                             "KASSA_ADYEN_REPORT_USERNAME and KASSA_ADYEN_REPORT_PASSWORD")
        sources["adyen"] = AdyenSettlementReports(client, adyen)
    return sources


def pull_policy(settings: Settings) -> PullPolicy:
    return PullPolicy(reports_dir=settings.reconcile_reports_dir
                      or settings.home / "settlement_reports",
                      catch_up_days=settings.reconcile_pull_catch_up_days,
                      lease_seconds=settings.reconcile_pull_lease_seconds)


def build_relay(settings: Settings, kassa: Kassa) -> Relay | None:
    """The outbox relay to Kafka, when KASSA_KAFKA_BOOTSTRAP is set (None otherwise: then
    consumers read the same stream from GET /v1/events)."""
    if not settings.kafka_bootstrap:
        return None
    from kassa.events.kafka import KafkaOptions, KafkaPublisher

    def path(p: object) -> str | None:
        return None if p is None else str(p)

    password = settings.kafka_sasl_password
    options = KafkaOptions(
        bootstrap=settings.kafka_bootstrap, topic=settings.kafka_topic,
        client_id=settings.kafka_client_id, idempotence=settings.kafka_idempotence,
        create_topic=settings.kafka_create_topic, partitions=settings.kafka_topic_partitions,
        replication_factor=settings.kafka_replication_factor,
        security_protocol=settings.kafka_security_protocol,
        sasl_mechanism=settings.kafka_sasl_mechanism,
        sasl_username=settings.kafka_sasl_username,
        sasl_password=password.get_secret_value() if password is not None else None,
        ssl_cafile=path(settings.kafka_ssl_cafile), ssl_certfile=path(settings.kafka_ssl_certfile),
        ssl_keyfile=path(settings.kafka_ssl_keyfile))
    return Relay(pool=kassa.pool, publisher=KafkaPublisher(options), name=settings.relay_name,
                 batch_size=settings.relay_batch_size)


def webhook_policy(settings: Settings) -> WebhookPolicy:
    """What the webhook endpoint use cases need from configuration."""
    return WebhookPolicy(production=settings.env == "production",
                         rotation_grace_seconds=settings.webhook_rotation_grace_seconds,
                         max_endpoints_per_merchant=settings.webhook_max_endpoints_per_merchant)


def webhook_transport(settings: Settings) -> httpx.AsyncBaseTransport:
    """The outbound transport for merchant webhooks: aiohttp's connection pool behind
    httpx's transport interface (as for PSP calls), sized to the sender's concurrency; in
    production its DNS refuses non-public addresses (SSRF, including rebinding after the
    endpoint was registered)."""
    import aiohttp

    from kassa.webhooks.delivery import PublicOnlyResolver

    production = settings.env == "production"
    size = settings.webhook_max_in_flight

    def session() -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=size, limit_per_host=0, ssl=httpx.create_ssl_context(),
            resolver=PublicOnlyResolver() if production else None)
        return aiohttp.ClientSession(connector=connector)

    limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
    return AiohttpTransport(limits=limits, client=session)


def build_webhook_sender(settings: Settings, kassa: Kassa, *,
                         transport: httpx.AsyncBaseTransport | None = None
                         ) -> tuple[WebhookSender, Closer]:
    """The webhook sender (worker role ``webhooks``) with its own connection pool."""
    from kassa.webhooks.backoff import RetrySchedule
    from kassa.webhooks.delivery import DeliveryConfig

    owned = transport or webhook_transport(settings)
    config = DeliveryConfig(
        timeout_seconds=settings.webhook_timeout_seconds,
        lease_margin_seconds=settings.webhook_lease_margin_seconds,
        max_in_flight=settings.webhook_max_in_flight,
        per_endpoint=settings.webhook_per_endpoint_concurrency,
        batch_size=settings.webhook_batch_size,
        poll_interval_seconds=settings.webhook_poll_interval_seconds,
        schedule=RetrySchedule(base_seconds=settings.webhook_retry_base_seconds,
                               cap_seconds=settings.webhook_retry_cap_seconds,
                               window_seconds=settings.webhook_retry_window_seconds),
        production=settings.env == "production",
        retention_days=settings.webhook_retention_days)

    async def close() -> None:
        if transport is None:
            await owned.aclose()

    return WebhookSender(kassa.pool, owned, config), close
