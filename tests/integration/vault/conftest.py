from __future__ import annotations

import httpx
import pytest

from kassa.api.app import create_app
from kassa.services import merchants
from tests.support.vault import kassa_through, running_vault


@pytest.fixture
async def vault(settings, dsn):
    async with running_vault(settings, dsn) as running:
        yield running


@pytest.fixture
async def api(vault, dsn):
    """The API in-process, wired as in production: no KEK, card placeholders forwarded."""
    async with kassa_through(vault, dsn) as k:
        app = create_app(kassa=k, key_cache_seconds=0.0)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://kassa.test") as c:
            c.kassa = k  # type: ignore[attr-defined]
            yield c


@pytest.fixture
async def shop(api):
    return await merchants.create_merchant(api.kassa, name="Vault shop")
