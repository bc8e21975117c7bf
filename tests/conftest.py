"""Shared fixtures: a real PostgreSQL (embedded, or KASSA_TEST_DATABASE_URL's server) with a
fresh database per session, the PSP simulator on loopback, and a kassa wired to both."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from kassa import bootstrap
from kassa.api.app import create_app
from kassa.config import Settings
from kassa.services import merchants
from kassa.services.context import Kassa
from tests.support.databases import migrated_database
from tests.support.simulator_server import running_simulator


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server URL (any database on it)."""
    external = os.environ.get("KASSA_TEST_DATABASE_URL")
    if external:
        yield external
        return
    from kassa.db.embedded import EmbeddedPostgres

    # The same code path as `kassa dev`: as root in a private tmp dir the server's files are
    # relocated where its OS user can reach them; destroy() removes them there too.
    pg = EmbeddedPostgres(Path(tmp_path_factory.mktemp("pg")) / "data", fast=True)
    dsn = pg.start()
    try:
        yield dsn
    finally:
        pg.destroy()


@pytest.fixture(scope="session")
def dsn(server_url: str) -> Iterator[str]:
    """A fresh, migrated database for this test session, dropped afterwards."""
    with migrated_database(server_url) as url:
        yield url


@pytest.fixture(scope="session")
def simulator_url() -> Iterator[str]:
    with running_simulator() as url:
        yield url


@pytest.fixture(scope="session")
def localstripe_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """localstripe (a fake Stripe) on loopback, its store in a directory of this session."""
    from tests.support.localstripe_server import running_localstripe

    with running_localstripe(tmp_path_factory.mktemp("localstripe")) as url:
        yield url


@pytest.fixture(scope="session")
def settings(simulator_url: str) -> Settings:
    from tests.support.vault import SESSION_SECRETS_KEYS

    return Settings(env="test", simulator_url=simulator_url, psp_timeout_seconds=5.0,
                    api_key_cache_seconds=0.0, secrets_keys=SESSION_SECRETS_KEYS)


@pytest.fixture(scope="session")
async def kassa(settings: Settings, dsn: str) -> AsyncIterator[Kassa]:
    k, close = await bootstrap.build(settings, dsn, pool_size=20)
    try:
        yield k
    finally:
        await close()


@pytest.fixture(scope="session")
async def client(kassa: Kassa) -> AsyncIterator[httpx.AsyncClient]:
    """The API in-process over ASGI (the real app, routers, errors and database)."""
    app = create_app(kassa=kassa, key_cache_seconds=0.0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://kassa.test") as c:
        yield c


@pytest.fixture
async def merchant(kassa: Kassa) -> dict[str, str]:
    return await merchants.create_merchant(kassa, name="Test merchant")


@pytest.fixture
def auth(merchant: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {merchant['secret_key']}"}


@pytest.fixture
async def sim(simulator_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client for the simulator's inspection and fault endpoints."""
    async with httpx.AsyncClient(base_url=simulator_url) as c:
        yield c
        await c.post("/_sim/config", json={"latency_ms": 0, "error_rate": 0,
                                           "timeout_rate": 0})
