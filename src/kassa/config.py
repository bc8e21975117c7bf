"""Settings from the environment (KASSA_*), validated once at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    default_psp: str = "simulator"
    psp_timeout_seconds: float = 10.0
    db_pool_size: int = Field(default=16, ge=1, le=200)
    # An attempt still `started` this long after its last update is presumed orphaned
    # (the process that made it died); must exceed psp_timeout_seconds.
    recovery_after_seconds: float = 30.0
    recovery_interval_seconds: float = 2.0
    # A request holding an idempotency key this long is presumed dead; a retry takes over.
    idempotency_lock_timeout_seconds: float = 60.0
    idempotency_retention_hours: float = Field(default=24.0, ge=24.0)
    settlement_delay_seconds: int = 2 * 24 * 3600  # pending -> available
    fee_percent_bps: int = 290
    fee_fixed_cents: int = 30
    api_key_cache_seconds: float = 5.0  # revocation takes effect within this time
    api_workers: int = 1

    def psp_timeout(self) -> float:
        return self.psp_timeout_seconds

    def simulator_base_url(self) -> str:
        return self.simulator_url or f"http://{self.simulator_host}:{self.simulator_port}"
