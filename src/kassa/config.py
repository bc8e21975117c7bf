"""Settings from the environment (KASSA_*), validated once at start-up."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_FORWARD_SECRET = 32  # characters of KASSA_VAULT_FORWARD_SECRET when KASSA_ENV=production
VAULT_FORWARD_HOST = "127.0.0.1"  # the vault's forwarding listener: loopback, not a setting
MIN_CHECKOUT_TOKEN_SECRET = 32  # characters of KASSA_CHECKOUT_TOKEN_SECRET[_PREVIOUS] outside
# development


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KASSA_", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    home: Path = Path(".kassa")  # embedded PostgreSQL data and runtime files
    database_url: str | None = None  # unset: embedded PostgreSQL under `home`
    host: str = "127.0.0.1"
    port: int = 8000
    simulator_host: str = "127.0.0.1"
    simulator_port: int = 8001
    simulator_url: str | None = None  # unset: the simulator `kassa dev` starts
    # Inbound PSP webhooks from the simulator: HMAC key shared with it (several, comma
    # separated, while rotating; `kassa dev` makes one up when unset), the timestamp
    # tolerance that refuses replays, and where the simulator sends them (default in
    # `kassa dev`: this API's /psp/simulator/webhooks).
    simulator_webhook_secret: SecretStr | None = None
    simulator_webhook_url: str | None = None
    psp_webhook_tolerance_seconds: int = Field(default=300, ge=1, le=3600)
    psp_webhooks_interval_seconds: float = 0.5  # psp-webhooks worker idle poll
    default_psp: str = "simulator"
    psp_timeout_seconds: float = 10.0
    # More simulator accounts beside `simulator` (two PSPs to route between, locally):
    # "name=url,name2=url2"; each is a simulator server of its own (`kassa simulator --port`).
    simulator_accounts: str = ""
    # Routing (psp/policy_router.py, README "Routing"): the exploration share of
    # success_rate routes, how long a process keeps a merchant's active configuration,
    # and the circuit breaker per PSP account (psp/breaker.py). Per process.
    routing_exploration_percent: float = Field(default=5.0, ge=0, le=50)
    routing_cache_seconds: float = Field(default=5.0, ge=0)
    breaker_window_seconds: float = Field(default=30.0, gt=0)
    breaker_min_volume: int = Field(default=20, ge=1)
    breaker_failure_ratio: float = Field(default=0.5, gt=0, lt=1)
    breaker_cooldown_seconds: float = Field(default=15.0, gt=0)
    breaker_probes: int = Field(default=3, ge=1)
    breaker_slow_call_seconds: float = Field(default=5.0, gt=0)
    # GET /metrics: open when unset (bind the API to a private network or put it behind
    # the proxy), else it wants "Authorization: Bearer <token>".
    metrics_token: SecretStr | None = None
    # A worker process's own metrics (workers/metrics.py; the API's /metrics shows only the
    # API's PSP calls): served on this port, loopback unless the host says otherwise, with
    # the same token; unset: not served (`kassa dev` takes a free port).
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int | None = Field(default=None, ge=0, le=65535)
    db_pool_size: int = Field(default=16, ge=1, le=200)
    # Group commit (db/batch_writer.py): concurrent requests' saga steps share a database
    # transaction, up to this many units each (1 turns it off), with at most
    # `db_write_flushes` such transactions in flight per process.
    db_write_batch: int = Field(default=32, ge=1, le=32)
    db_write_flushes: int = Field(default=2, ge=1, le=16)
    # An attempt still `started` this long after its last update is presumed orphaned
    # (the process that made it died); must exceed psp_timeout_seconds.
    recovery_after_seconds: float = 30.0
    recovery_interval_seconds: float = 2.0
    # What recovery watches (services/recovery.py): first looks at a pending capture or
    # refund and at an open 3-D Secure authentication, the backoff cap, the bound on
    # unresolved looks before an attempt `needs_attention`, how long a customer has to
    # complete 3-D Secure, and how long the simulator's authorisations hold funds.
    pending_poll_seconds: float = Field(default=30.0, gt=0)
    action_poll_seconds: float = Field(default=15.0, gt=0)
    action_expiry_seconds: float = Field(default=3600.0, gt=0)
    recovery_backoff_cap_seconds: float = Field(default=3600.0, gt=0)
    recovery_max_tries: int = Field(default=20, ge=1)
    simulator_hold_validity_seconds: float = Field(default=7 * 24 * 3600.0, gt=0)
    # This API as the customer's browser reaches it (the PSP sends customers back to
    # <public_url>/psp/<psp>/return/<attempt> after 3-D Secure); unset: http://host:port.
    public_url: str | None = None
    # A request holding an idempotency key this long is presumed dead; a retry takes over.
    idempotency_lock_timeout_seconds: float = 60.0
    idempotency_retention_hours: float = Field(default=24.0, ge=24.0)
    # The daily pull of settlement reports (worker role reconcile-pull, README
    # "Reconciliation"): how often it looks for a day to pull, how many days back it catches
    # up after downtime, where it keeps the downloaded files (unset: KASSA_HOME/
    # settlement_reports), how long a claim holds before another worker takes it over.
    reconcile_pull_interval_seconds: float = Field(default=300.0, gt=0)
    reconcile_pull_catch_up_days: int = Field(default=7, ge=1, le=90)
    reconcile_reports_dir: Path | None = None
    reconcile_pull_lease_seconds: int = Field(default=900, ge=60)
    # the merchant account whose secret keys see the platform's reconciliation runs
    platform_account: str | None = None
    fee_percent_bps: int = 290
    fee_fixed_cents: int = 30
    api_key_cache_seconds: float = 5.0  # revocation takes effect within this time
    # Multi-currency (README "Multi-currency", domain/fx.py): a converted payment uses the
    # latest rate not older than this; `kassa fx pull` reads rates from this URL (JSON/CSV)
    fx_max_age_seconds: int = Field(default=24 * 3600, ge=1)
    fx_provider_url: str | None = None
    # a PSP's conversion in a settlement report more than this fraction off kassa's own rate
    # for the pair (near the row's time, within fx_max_age_seconds) is an amount_mismatch
    # and is not posted; kassa without a rate for the pair checks no band
    fx_reconcile_band: Decimal = Field(default=Decimal("0.05"), gt=0, lt=1)
    # a merchant's settlement currency is read once per this many seconds per process
    # (a change applies to payments confirmed from then on, within this time elsewhere)
    fx_settings_cache_seconds: float = Field(default=60.0, ge=0)
    api_workers: int = 1
    # Event stream (README "Event stream"): unset, consumers read GET /v1/events instead.
    kafka_bootstrap: str | None = None  # host:port[,host:port…]; enables the relay worker
    kafka_topic: str = "kassa.events"  # one topic for every event family, keyed by payment
    kafka_create_topic: bool = True  # create it at relay start-up if missing
    kafka_topic_partitions: int = Field(default=12, ge=1)
    kafka_replication_factor: int = Field(default=1, ge=1)  # 3 on a real cluster
    kafka_idempotence: bool = True  # off only for brokers without InitProducerId
    kafka_client_id: str = "kassa-relay"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT",
                                     "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    relay_name: str = "kafka"  # the stored position's name; one active relay per name
    relay_batch_size: int = Field(default=500, ge=1, le=10_000)
    relay_interval_seconds: float = 0.2  # idle poll
    # Merchant webhooks (README "Webhooks").
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)  # 2xx within this = delivered
    webhook_lease_margin_seconds: float = Field(default=5.0, gt=0)  # lease = timeout + margin
    webhook_max_in_flight: int = Field(default=256, ge=1)  # open requests per sender
    webhook_per_endpoint_concurrency: int = Field(default=8, ge=1)  # per sender and endpoint
    webhook_batch_size: int = Field(default=256, ge=1, le=5000)  # deliveries per claim
    webhook_poll_interval_seconds: float = Field(default=0.2, gt=0)  # idle queue poll
    webhook_retry_base_seconds: float = Field(default=60.0, gt=0)  # first retry within this
    webhook_retry_cap_seconds: float = Field(default=6 * 3600.0, gt=0)  # longest single wait
    webhook_retry_window_seconds: float = Field(default=3 * 24 * 3600.0, gt=0)  # then dead
    webhook_rotation_grace_seconds: float = Field(default=24 * 3600.0, ge=0)  # old secret
    webhook_max_endpoints_per_merchant: int = Field(default=32, ge=1)
    webhook_retention_days: float = Field(default=30.0, ge=0)  # finished deliveries; 0: keep
    # Setup and processes (README "Database roles and migrations"): the schema owner's URL for
    # `kassa migrate`/`kassa dev` (unset: KASSA_DATABASE_URL); the serving role granted the
    # services' privileges after each migration (unset: KASSA_DATABASE_URL's user when the
    # migration URL logs in as another); the embedded server's port (unset: the last one used,
    # else a free one).
    migration_database_url: str | None = None
    service_role: str | None = None
    embedded_db_port: int | None = Field(default=None, ge=1, le=65535)
    # The API's door (api/door.py): request bodies past this many bytes are refused with
    # 413 before they are read whole.
    api_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # and a request not answered within this many seconds (database or PSP stalled) is
    # answered 503 while it runs on; above psp_timeout_seconds, so a slow PSP still answers.
    api_answer_within_seconds: float = Field(default=30.0, gt=0)

    # The card vault (README "Card vault"): its own process (`kassa vault`) on its own port,
    # database role (KASSA_VAULT_DATABASE_URL's user, or KASSA_VAULT_ROLE, granted by `kassa
    # migrate`) and key-encryption keys (a keyring file, or the keyring text itself); the
    # token kassa's API and workers present to its forwarding endpoint; the PSP origins it
    # forwards card data to (default: the simulator's); how long a CVC waits in its memory
    # for the first authorisation; how often it re-reads the active KEK version.
    vault_host: str = "127.0.0.1"
    vault_port: int = 8002
    vault_url: str | None = None  # unset: http://vault_host:vault_port
    vault_database_url: str | None = None  # unset: KASSA_DATABASE_URL
    vault_role: str | None = None
    vault_kek_file: Path | None = None  # unset (and no KASSA_VAULT_KEKS): KASSA_HOME/vault-kek
    vault_keks: SecretStr | None = None
    vault_forward_secret: SecretStr | None = None
    vault_forward_hosts: str | None = None
    vault_cvc_ttl_seconds: float = Field(default=600.0, gt=0)
    vault_kek_refresh_seconds: float = Field(default=5.0, gt=0)
    # the vault as customers' browsers reach it (the hosted checkout page posts cards
    # there); unset: vault_url
    vault_public_url: str | None = None
    # The vault's forwarding endpoint (POST /v1/forward, which fills card numbers into PSP
    # requests) has a listener of its own on 127.0.0.1, never the public one browsers reach:
    # the API and workers on the same machine send their placeholders there.
    vault_forward_port: int = Field(default=8004, ge=0, le=65535)
    # The hosted checkout's tokens (checkout/tokens.py) are signed with a secret of their
    # own, shared by the API (mints) and the vault (verifies); while rotating, tokens signed
    # with the previous one still verify (they live 30 minutes), none is signed with it.
    checkout_token_secret: SecretStr | None = None
    checkout_token_secret_previous: SecretStr | None = None
    # Merchants' own PSP accounts (README "Bring your own PSP account"): the keys their
    # credentials are sealed with (kassa/secrets_box.py): "v1:<base64 of 32 bytes>,v2:…"
    # (the highest seals), else the key file (unset: KASSA_HOME/secrets-keys, created
    # outside production when missing).
    secrets_keys: SecretStr | None = None
    secrets_key_file: Path | None = None
    # Merchants' Stripe accounts are localstripe (tests, local development): their adapters
    # leave out what localstripe refuses, and their keys are not bound to a Stripe account
    # id (localstripe has no /v1/account: psp/stripe/account.py). Refused in production.
    psp_accounts_localstripe: bool = False
    # A PSP's own token (``stripe:pm_…``, ``adyen:<shopper>/<id>``) on the platform's shared
    # Stripe or Adyen account is refused: kassa cannot tell which merchant such a token was
    # stored for, so one merchant could charge another's shopper. Set it where every
    # merchant may charge every token of the platform's accounts (one merchant, or merchants
    # that are one business). Merchants' own accounts (pspacct_…) take their tokens always.
    psp_tokens_on_platform_accounts: bool = False
    # Payouts: the payout rail (unset KASSA_BANK_URL: the bank simulator on
    # bank_host:bank_port, which `kassa dev` starts on a free port unless bank_port is set),
    # the payouts worker's idle pass, its first look at an in-transit payout (doubling while
    # nothing changes, up to the cap), and how long a paid payout is watched for a return.
    bank_host: str = "127.0.0.1"
    bank_port: int | None = Field(default=None, ge=0, le=65535)
    bank_url: str | None = None
    payouts_interval_seconds: float = Field(default=2.0, gt=0)
    payout_poll_seconds: float = Field(default=60.0, ge=0)
    payout_poll_cap_seconds: float = Field(default=6 * 3600.0, ge=0)
    payout_return_watch_days: float = Field(default=10.0, ge=0)
    # How often the payout scheduler looks for due periods (a period is a day at the finest:
    # a minute's lag is nothing; many replicas may run, each period is claimed once).
    payout_schedule_interval_seconds: float = Field(default=60.0, gt=0)
    # A file holding a unix time that is the clock of every process reading this setting, so
    # a test can move the days forward under running workers (the payout scheduler's race
    # with SIGKILLs over 30 simulated days). Refused in production.
    test_clock_file: Path | None = None

    @field_validator("vault_forward_secret")
    @classmethod
    def _forward_secret_long_enough(cls, value: SecretStr | None, info: ValidationInfo
                                    ) -> SecretStr | None:
        """It lets its holder have card numbers filled into requests to allowed PSP hosts:
        in production, at least 32 characters."""
        if (value is not None and info.data.get("env") == "production"
                and len(value.get_secret_value()) < MIN_FORWARD_SECRET):
            raise ValueError(f"it must be at least {MIN_FORWARD_SECRET} characters in "
                             "production (generate one: openssl rand -hex 32)")
        return value

    @field_validator("psp_accounts_localstripe")
    @classmethod
    def _no_localstripe_in_production(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("env") == "production":
            raise ValueError("localstripe is for tests: unset KASSA_PSP_ACCOUNTS_LOCALSTRIPE")
        return value

    @field_validator("test_clock_file")
    @classmethod
    def _no_test_clock_in_production(cls, value: Path | None, info: ValidationInfo
                                     ) -> Path | None:
        if value is not None and info.data.get("env") == "production":
            raise ValueError("a test clock is for tests: unset KASSA_TEST_CLOCK_FILE")
        return value

    @field_validator("checkout_token_secret", "checkout_token_secret_previous")
    @classmethod
    def _checkout_secret_long_enough(cls, value: SecretStr | None, info: ValidationInfo
                                     ) -> SecretStr | None:
        """Every checkout page carries a token, so anyone may guess its secret offline:
        outside development, at least 32 characters."""
        if (value is not None and info.data.get("env", "development") != "development"
                and len(value.get_secret_value()) < MIN_CHECKOUT_TOKEN_SECRET):
            raise ValueError(f"it must be at least {MIN_CHECKOUT_TOKEN_SECRET} characters "
                             "outside development (generate one: openssl rand -hex 32)")
        return value

    def bank_base_url(self) -> str:
        port = self.bank_port or 8003  # the bank simulator's own default (8002: the vault)
        return (self.bank_url or f"http://{self.bank_host}:{port}").rstrip("/")

    def psp_timeout(self) -> float:
        return self.psp_timeout_seconds

    def public_base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def simulator_base_url(self) -> str:
        return self.simulator_url or f"http://{self.simulator_host}:{self.simulator_port}"

    def extra_simulator_accounts(self) -> list[tuple[str, str]]:
        """(name, base URL) of each KASSA_SIMULATOR_ACCOUNTS entry."""
        out: list[tuple[str, str]] = []
        for entry in (e.strip() for e in self.simulator_accounts.split(",")):
            if not entry:
                continue
            name, sep, url = entry.partition("=")
            if not sep or not name.strip() or not url.strip():
                raise ValueError(f"KASSA_SIMULATOR_ACCOUNTS: {entry!r} is not name=url")
            out.append((name.strip(), url.strip().rstrip("/")))
        return out

    def metrics_bearer(self) -> str | None:
        secret: object = self.metrics_token
        raw = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        return str(raw) if raw else None

    def simulator_webhook_secrets(self) -> list[str]:
        secret: object = self.simulator_webhook_secret
        # model_copy(update=…) skips validation, so a plain str may arrive here too
        raw = secret.get_secret_value() if isinstance(secret, SecretStr) else str(secret or "")
        return [s.strip() for s in raw.split(",") if s.strip()]

    def secrets_key_path(self) -> Path:
        return self.secrets_key_file or self.home / "secrets-keys"

    def vault_base_url(self) -> str:
        return (self.vault_url or f"http://{self.vault_host}:{self.vault_port}").rstrip("/")

    def vault_browser_url(self) -> str:
        return (self.vault_public_url or self.vault_base_url()).rstrip("/")

    def vault_forward_url(self) -> str:
        """Where the API and workers reach the vault's forwarding listener (loopback)."""
        return f"http://{VAULT_FORWARD_HOST}:{self.vault_forward_port}"

    def checkout_token_secrets(self) -> list[str]:
        """The checkout token secret, then the previous one (verification only), if set."""
        secrets: list[str] = []
        for secret in (self.checkout_token_secret, self.checkout_token_secret_previous):
            # model_copy(update=…) skips validation, so a plain str may arrive here too
            raw = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
            if raw:
                secrets.append(str(raw))
        return secrets if self.checkout_token_secret else []

    def checkout_token_refusal(self) -> str | None:
        """Why a process that signs or verifies checkout tokens (the API with a vault, the
        vault) must not start, or None. Development without a secret only has no hosted
        checkout (`kassa dev` makes one up)."""
        secrets = self.checkout_token_secrets()
        if not secrets:
            return None if self.env == "development" else (
                "KASSA_CHECKOUT_TOKEN_SECRET is not set (the hosted checkout's tokens are "
                "signed with it)")
        if self.vault_forward_token() in secrets:
            return ("KASSA_CHECKOUT_TOKEN_SECRET[_PREVIOUS] is the vault's forward secret; "
                    "each secret keys one thing")
        return None

    def vault_forward_token(self) -> str | None:
        secret: object = self.vault_forward_secret
        raw = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        return str(raw) if raw else None

    def vault_allowed_hosts(self) -> str:
        return self.vault_forward_hosts or self.simulator_base_url()
