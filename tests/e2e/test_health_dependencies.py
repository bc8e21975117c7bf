"""`kassa api`'s /healthz is ready while its default PSP is down: the PSP's state is shown
under ``dependencies``, never a reason to be unready (every replica shares the PSP; a probe
that took them all out would stop the failover to the others)."""

from __future__ import annotations

import os

import httpx

from tests.support.databases import migrated_database
from tests.support.processes import free_port, kassa_process, wait_healthy


async def test_ready_while_the_default_psp_is_down(server_url, simulator_url, tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with migrated_database(server_url, "kassa_health_deps") as db:
        for psp_url, answering in ((dead, False), (simulator_url, True)):
            port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("KASSA_")} | {
                "KASSA_DATABASE_URL": db, "KASSA_ENV": "test", "KASSA_PORT": str(port),
                "KASSA_HOME": str(tmp_path / "home"), "KASSA_SIMULATOR_URL": psp_url}
            with kassa_process(["api"], env) as api:
                base = f"http://127.0.0.1:{port}"
                await wait_healthy(base, api)
                async with httpx.AsyncClient(base_url=base) as c:
                    r = await c.get("/healthz")
            assert r.status_code == 200, r.text
            assert r.json() == {"status": "ok", "checks": {"database": True},
                                "dependencies": {"simulator": answering}}
