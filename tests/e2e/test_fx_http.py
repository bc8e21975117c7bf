"""Multi-currency end to end: kassa served over real HTTP on loopback, rates loaded and
pulled with the `kassa fx` CLI as an operator runs it. A EUR payment for a merchant
settling in USD is a 400 until a rate is loaded; then its balance transaction carries the
exchange rate, GET /v1/balance is in USD, and `kassa ledger verify` passes."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import subprocess
import sys
import threading
import time

import httpx
import pytest

from kassa import bootstrap
from kassa.api.app import create_app
from kassa.services import merchants
from tests.support.api_server import serving
from tests.support.databases import migrated_database


def kassa_cli(*args: str, dsn: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kassa.cli", *args], capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "KASSA_DATABASE_URL": dsn, **env})


@pytest.fixture
def private_dsn(server_url):
    with migrated_database(server_url, "kassa_fx_http") as url:
        yield url


class _Provider(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


async def test_eur_payment_for_a_usd_merchant_over_http(private_dsn, settings, tmp_path):
    k, close = await bootstrap.build(settings, private_dsn, pool_size=4)
    try:
        m = await merchants.create_merchant(k, name="FX merchant")
        auth = {"Authorization": f"Bearer {m['secret_key']}"}
        async with serving(create_app(kassa=k, key_cache_seconds=0.0)) as url, \
                httpx.AsyncClient(base_url=url, headers=auth) as api:
            r = await api.post("/v1/account", data={"default_currency": "usd"})
            assert r.status_code == 200 and r.json()["default_currency"] == "usd"
            pay = {"amount": "2500", "currency": "eur", "payment_method": "pm_card_visa",
                   "confirm": "true"}
            r = await api.post("/v1/payment_intents", data=pay)
            assert r.status_code == 400, r.text
            assert r.json()["error"]["code"] == "fx_rate_unavailable"
            rates = tmp_path / "rates.csv"
            rates.write_text(f"base,quote,rate,as_of\neur,usd,1.0842,{int(time.time()) - 60}\n"
                             "eur,xxx,1,1\n")
            bad = await asyncio.to_thread(kassa_cli, "fx", "load", str(rates),
                                          dsn=private_dsn)
            assert bad.returncode == 1 and "line 3" in bad.stderr  # nothing stored
            r = await api.post("/v1/payment_intents", data=pay)
            assert r.status_code == 400
            rates.write_text(f"base,quote,rate,as_of\neur,usd,1.0842,{int(time.time()) - 60}\n")
            loaded = await asyncio.to_thread(kassa_cli, "fx", "load", str(rates),
                                             dsn=private_dsn)
            assert loaded.returncode == 0, loaded.stderr
            assert json.loads(loaded.stdout) == {"read": 1, "stored": 1}
            r = await api.post("/v1/payment_intents", data=pay)
            assert r.status_code == 200, r.text
            pi = r.json()
            assert (pi["status"], pi["amount"], pi["currency"]) == ("succeeded", 2500, "eur")
            (bt,) = (await api.get("/v1/balance_transactions")).json()["data"]
            # 25.00 * 1.0842 = 27.105 usd: half-even to 27.10 (not 27.11)
            fee = (2710 * 290 + 5000) // 10_000 + 30
            assert (bt["amount"], bt["currency"], bt["exchange_rate"], bt["fee"]) == (
                2710, "usd", 1.0842, fee)
            bal = (await api.get("/v1/balance")).json()
            assert [(b["currency"], b["amount"]) for b in bal["pending"]] == [
                ("usd", 2710 - fee)]
            r = await api.post("/v1/refunds", data={"payment_intent": pi["id"]})
            assert r.status_code == 200 and r.json()["currency"] == "eur"
            bal = (await api.get("/v1/balance")).json()
            assert sum(b["amount"] for b in bal["pending"] + bal["available"]
                       if b["currency"] == "usd") == -fee
            assert {b["currency"] for b in bal["pending"] + bal["available"]} == {"usd"}
            # the provider on loopback, pulled by the CLI
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Provider)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            try:
                _Provider.body = json.dumps({
                    "base": "eur", "as_of": int(time.time()), "source": "loopback",
                    "rates": {"usd": "1.0901", "gbp": "0.8612"}}).encode()
                provider = f"http://127.0.0.1:{server.server_address[1]}/latest"
                pulled = await asyncio.to_thread(kassa_cli, "fx", "pull", dsn=private_dsn,
                                                 KASSA_FX_PROVIDER_URL=provider)
                assert pulled.returncode == 0, pulled.stderr
                assert json.loads(pulled.stdout) == {"read": 2, "stored": 2}
            finally:
                server.shutdown()
                server.server_close()
            listed = await asyncio.to_thread(kassa_cli, "fx", "rates", dsn=private_dsn)
            got = {(x["quote"], x["rate"], x["source"])
                   for x in map(json.loads, listed.stdout.splitlines())}
            assert got == {("usd", "1.0901", "loopback"), ("gbp", "0.8612", "loopback")}
            r = await api.get("/v1/exchange_rates/eur")
            assert r.json()["rates"] == {"gbp": 0.8612, "usd": 1.0901}
        verify = await asyncio.to_thread(kassa_cli, "ledger", "verify", dsn=private_dsn)
        assert verify.returncode == 0, verify.stdout + verify.stderr
    finally:
        await close()
