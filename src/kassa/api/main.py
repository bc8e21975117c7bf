"""ASGI entry point for `kassa api` (uvicorn --factory): settings from the environment."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from kassa import bootstrap
from kassa.api.app import create_app
from kassa.config import Settings


def app_factory() -> FastAPI:
    settings = Settings()
    if not settings.database_url:
        raise RuntimeError("KASSA_DATABASE_URL must be set for the API process")
    dsn = settings.database_url

    async def build():  # type: ignore[no-untyped-def]
        built = await bootstrap.build(settings, dsn)
        bootstrap.tune_gc()
        return built

    async def simulator_ready() -> dict[str, bool]:
        if settings.default_psp != "simulator":
            return {}
        try:
            async with httpx.AsyncClient(timeout=2.0) as client:
                r = await client.get(settings.simulator_base_url() + "/healthz")
            return {"simulator": r.status_code == 200}
        except httpx.HTTPError:
            return {"simulator": False}

    return create_app(lifespan_kassa=build, dependencies=simulator_ready,
                      key_cache_seconds=settings.api_key_cache_seconds,
                      max_body_bytes=settings.api_max_body_bytes,
                      answer_within_seconds=settings.api_answer_within_seconds)
