"""Each reconciliation module gets a database and a simulator of its own, so that nothing
but its own payments is in the day the simulator reports (and in kassa's receivable)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from kassa import bootstrap
from kassa.api.app import create_app
from kassa.config import Settings
from kassa.services.context import Kassa
from tests.support.databases import migrated_database
from tests.support.simulator_server import running_simulator


@pytest.fixture(scope="module")
def own_dsn(server_url: str) -> Iterator[str]:
    with migrated_database(server_url, prefix="kassa_recon") as url:
        yield url


@pytest.fixture(scope="module")
def own_simulator() -> Iterator[str]:
    with running_simulator() as url:
        yield url


@pytest.fixture(scope="module")
async def world(own_dsn, own_simulator) -> AsyncIterator[tuple[Kassa, httpx.AsyncClient,
                                                              httpx.AsyncClient]]:
    """kassa over the module's database and simulator: (kassa, its API, the simulator)."""
    settings = Settings(env="test", simulator_url=own_simulator, psp_timeout_seconds=5.0,
                        api_key_cache_seconds=0.0)
    k, close = await bootstrap.build(settings, own_dsn, pool_size=10)
    app = create_app(kassa=k, key_cache_seconds=0.0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://kassa.test") as client, \
            httpx.AsyncClient(base_url=own_simulator, timeout=30.0) as sim:
        try:
            yield k, client, sim
        finally:
            await close()
