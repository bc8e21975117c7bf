"""A `kassa worker` process serves its own /metrics (KASSA_WORKER_METRICS_PORT): the PSP
call recovery makes to resolve an attempt is counted there, over HTTP, behind the same
token as the API's /metrics."""

from __future__ import annotations

import asyncio
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import free_port, kassa_process
from tests.support.recovery import make_due


def psp_calls(text: str, psp: str) -> dict[tuple[str, str], float]:
    """kassa_psp_requests_total of one account, by (operation, outcome)."""
    return {(s.labels["operation"], s.labels["outcome"]): s.value
            for family in text_string_to_metric_families(text)
            if family.name == "kassa_psp_requests"
            for s in family.samples
            if s.name == "kassa_psp_requests_total" and s.labels["psp"] == psp}


async def test_a_psp_call_made_by_recovery_shows_in_the_workers_metrics(
        client, auth, kassa, sim, dsn, simulator_url, tmp_path):
    # the PSP charges, then answers 503: the attempt's outcome is unknown, left to recovery
    r = await sim.post("/_sim/faults", json={"faults": ["error_after_charge"]})
    assert r.status_code == 200, r.text
    r = await client.post("/v1/payment_intents", headers=auth, data={
        "amount": "2500", "currency": "usd", "payment_method": "pm_card_visa",
        "confirm": "true"})
    assert r.status_code == 200 and r.json()["status"] == "processing", r.text
    pi = r.json()["id"]
    await make_due(kassa, pi)
    api_before = psp_calls((await client.get("/metrics")).text, "simulator")

    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    env = {"KASSA_DATABASE_URL": dsn, "KASSA_SIMULATOR_URL": simulator_url,
           "KASSA_ENV": "test", "KASSA_RECOVERY_INTERVAL_SECONDS": "0.2",
           "KASSA_WORKER_METRICS_PORT": str(port), "KASSA_METRICS_TOKEN": "scrape-me"}
    log = tmp_path / "worker.log"
    with kassa_process(["worker", "--role", "recovery"], env, log=log) as worker:
        async with httpx.AsyncClient(timeout=5) as scrape:
            deadline = time.monotonic() + 30
            while True:
                assert worker.poll() is None, log.read_text()
                got = (await client.get(f"/v1/payment_intents/{pi}", headers=auth)).json()
                if got["status"] == "succeeded":
                    break
                assert time.monotonic() < deadline, (got, log.read_text())
                await asyncio.sleep(0.2)
            metrics = await scrape.get(url, headers={"Authorization": "Bearer scrape-me"})
            assert metrics.status_code == 200, metrics.text
            assert metrics.headers["content-type"].startswith("text/plain")
            calls = psp_calls(metrics.text, "simulator")
            # recovery looked the attempt up at the simulator and found it charged
            assert calls.get(("lookup", "captured"), 0) >= 1, metrics.text
            assert got["amount_received"] == 2500

            refused = await scrape.get(url)
            assert refused.status_code == 401
            assert refused.json()["error"]["type"] == "invalid_request_error"
            wrong = await scrape.get(url, headers={"Authorization": "Bearer guess"})
            assert wrong.status_code == 401
            elsewhere = await scrape.get(f"http://127.0.0.1:{port}/")
            assert elsewhere.status_code == 404

    # the API's own /metrics never saw that call: it was the worker's
    api_after = psp_calls((await client.get("/metrics")).text, "simulator")
    assert api_after.get(("lookup", "captured")) == api_before.get(("lookup", "captured"))

