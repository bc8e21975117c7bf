"""`kassa routing` and `kassa psp status` as an operator runs them: configurations created
from a file (refusals name the param and exit 1), activated, shown; a backtest over
recorded authorisations; breaker state read from a running API's /metrics."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from kassa import bootstrap
from kassa.api.app import create_app
from kassa.config import Settings
from kassa.services import merchants
from tests.support.api_server import serving
from tests.support.databases import migrated_database
from tests.support.processes import free_port


def kassa(*args: str, dsn: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **env}
    if dsn is not None:
        full["KASSA_DATABASE_URL"] = dsn
    return subprocess.run([sys.executable, "-m", "kassa.cli", *args], capture_output=True,
                          text=True, timeout=120, env=full)


@pytest.fixture
def private_dsn(server_url):
    with migrated_database(server_url, "kassa_routing_cli") as url:
        yield url


def write(tmp_path: Path, name: str, body: object) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(body))
    return str(path)


async def test_create_activate_show_and_refusals(private_dsn, simulator_url, tmp_path):
    settings = Settings(env="test", simulator_url=simulator_url, api_key_cache_seconds=0.0)
    k, close = await bootstrap.build(settings, private_dsn, pool_size=2)
    try:
        m = await merchants.create_merchant(k, name="CLI routing")
    finally:
        await close()
    env = {"KASSA_SIMULATOR_ACCOUNTS": "sim_b=http://127.0.0.1:9"}
    run = lambda *a: asyncio.to_thread(kassa, *a, dsn=private_dsn, **env)  # noqa: E731
    none = await run("routing", "show", "--merchant", m["merchant_id"])
    assert none.returncode == 1 and "no active routing configuration" in none.stderr

    good = write(tmp_path, "good.json", {"name": "two", "default_route": {
        "strategy": "priority", "psps": ["simulator", "sim_b"]}})
    made = await run("routing", "create", good, "--merchant", m["merchant_id"])
    assert made.returncode == 0, made.stderr
    config = json.loads(made.stdout)
    assert config["version"] == 1 and config["active"] is False
    active = await run("routing", "activate", config["id"], "--merchant", m["merchant_id"])
    assert active.returncode == 0 and json.loads(active.stdout)["active"] is True
    shown = await run("routing", "show", "--merchant", m["merchant_id"])
    assert shown.returncode == 0 and json.loads(shown.stdout)["id"] == config["id"]

    ghost = write(tmp_path, "ghost.json", {"default_route": {"strategy": "single",
                                                             "psp": "ghost"}})
    refused = await run("routing", "create", ghost, "--merchant", m["merchant_id"])
    assert refused.returncode == 1
    assert "No such PSP account: 'ghost'" in refused.stderr
    assert "(default_route[psp])" in refused.stderr
    split = write(tmp_path, "split.json", {"default_route": {"strategy": "volume_split",
                                                             "split": [{"psp": "simulator",
                                                                        "percent": 90}]}})
    refused = await run("routing", "create", split, "--merchant", m["merchant_id"])
    assert refused.returncode == 1 and "default_route[split]" in refused.stderr
    (tmp_path / "broken.json").write_text("{nope")
    refused = await run("routing", "create", str(tmp_path / "broken.json"),
                        "--merchant", m["merchant_id"])
    assert refused.returncode == 1 and "not a readable JSON file" in refused.stderr
    every = await run("routing", "show", "--all", "--merchant", m["merchant_id"])
    assert [c["version"] for c in json.loads(every.stdout)] == [1]


async def test_backtest_replays_recorded_attempts(private_dsn, simulator_url, tmp_path):
    settings = Settings(env="test", simulator_url=simulator_url, api_key_cache_seconds=0.0,
                        simulator_accounts=f"sim_b={simulator_url}", db_write_batch=1)
    k, close = await bootstrap.build(settings, private_dsn, pool_size=4)
    app = create_app(kassa=k, key_cache_seconds=0.0)
    try:
        m = await merchants.create_merchant(k, name="Backtest")
        auth = {"Authorization": f"Bearer {m['secret_key']}"}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://kassa.test") as api:
            for i in range(8):  # 6 succeed, 2 declined, all at the default account
                pm = "pm_card_chargeDeclined" if i < 2 else "pm_card_visa"
                await api.post("/v1/payment_intents", headers=auth, json={
                    "amount": 1000, "currency": "usd", "payment_method": pm,
                    "confirm": True})
    finally:
        await close()
    candidate = write(tmp_path, "candidate.json", {"rules": [
        {"name": "big", "conditions": {"currency": "usd", "amount_gte": 5000},
         "route": {"strategy": "single", "psp": "sim_b"}}],
        "default_route": {"strategy": "single", "psp": "simulator"}})
    out = await asyncio.to_thread(
        kassa, "routing", "backtest", "--config", candidate, "--since", "2020-01-01",
        "--merchant", m["merchant_id"], dsn=private_dsn,
        KASSA_SIMULATOR_ACCOUNTS=f"sim_b={simulator_url}")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["payments"] == 8
    assert report["split"] == {"simulator": {"payments": 8, "share": 1.0,
                                             "measured_success_rate": 0.75}}
    assert report["rules"] == {"default": 8}
    assert report["recorded_success_rate"] == 0.75
    assert report["implied_success_rate"] == 0.75 and report["unmeasured"] == 0
    # everything to an account with no records: nothing is guessed
    other = write(tmp_path, "other.json", {"default_route": {"strategy": "single",
                                                             "psp": "sim_b"}})
    out = await asyncio.to_thread(
        kassa, "routing", "backtest", "--config", other, "--since", "0",
        "--merchant", m["merchant_id"], dsn=private_dsn,
        KASSA_SIMULATOR_ACCOUNTS=f"sim_b={simulator_url}")
    report = json.loads(out.stdout)
    assert report["implied_success_rate"] is None and report["unmeasured"] == 8


async def test_psp_status_reads_a_running_api(private_dsn, tmp_path):
    port = free_port()  # A refuses connections: its breaker opens
    settings = Settings(env="test", simulator_url=f"http://127.0.0.1:{port}",
                        api_key_cache_seconds=0.0, breaker_min_volume=2, db_write_batch=1)
    k, close = await bootstrap.build(settings, private_dsn, pool_size=4)
    app = create_app(kassa=k, key_cache_seconds=0.0)
    app.state.metrics_token = "s3cret"
    try:
        m = await merchants.create_merchant(k, name="Status")
        auth = {"Authorization": f"Bearer {m['secret_key']}"}
        async with serving(app) as url, httpx.AsyncClient(base_url=url) as api:
            for _ in range(2):
                await api.post("/v1/payment_intents", headers=auth, json={
                    "amount": 1000, "currency": "usd", "payment_method": "pm_card_visa",
                    "confirm": True})
            assert (await api.get("/metrics")).status_code == 401
            out = await asyncio.to_thread(kassa, "psp", "status", "--api-url", url,
                                          "--json", KASSA_METRICS_TOKEN="s3cret")
            assert out.returncode == 0, out.stderr
            status = json.loads(out.stdout)
            assert status["simulator"]["breaker"] == "open"
            assert status["simulator"]["breaker_opened"] == 1
            assert status["simulator"]["authorizations_failed"] == 2
            out = await asyncio.to_thread(kassa, "psp", "status", "--api-url", url)
            assert out.returncode == 1 and "HTTP 401" in out.stderr
    finally:
        await close()
