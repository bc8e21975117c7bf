"""Converted money through reconciliation as an operator runs it: payments through kassa's
API to a simulator on loopback that pays out in usd at its own rates (eur, jpy, kwd), the
simulator's own daily report over its HTTP API (what the daily pull downloads), then
`kassa reconcile import`, `kassa reconcile report run|daily` and `kassa ledger verify` as
processes against the same database — counted at both ends: the bank's usd is what the
simulator's books and rates say it paid, the PSP receivable is zero in every currency."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal

import httpx

from kassa import bootstrap
from kassa.api.app import create_app
from kassa.config import Settings
from kassa.domain.fx import convert
from kassa.domain.money import Money
from kassa.psp.simulator import SimulatorConfig
from kassa.psp.simulator.settlement_report import PRICING
from kassa.services import merchants
from tests.support.databases import migrated_database
from tests.support.simulator_server import running_simulator, running_simulator_process

RATES = {"eur": "1.0850", "jpy": "0.0067", "kwd": "3.2541"}
PAYMENTS = [("usd", 2000), ("eur", 1999), ("jpy", 1500), ("kwd", 1234), ("kwd", 5)]


def kassa(*args: str, dsn: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KASSA_DATABASE_URL": dsn}
    return subprocess.run([sys.executable, "-m", "kassa.cli", *args], capture_output=True,
                          text=True, timeout=120, env=env)


async def test_a_usd_paying_simulator_reconciled_with_the_cli(server_url, tmp_path):
    with migrated_database(server_url, "kassa_recon_fx_cli") as dsn, \
            running_simulator() as sim_url:
        settings = Settings(env="test", simulator_url=sim_url, psp_timeout_seconds=5.0,
                            api_key_cache_seconds=0.0)
        k, close = await bootstrap.build(settings, dsn, pool_size=4)
        try:
            app = create_app(kassa=k, key_cache_seconds=0.0)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://kassa.test") as client, \
                    httpx.AsyncClient(base_url=sim_url, timeout=30.0) as sim:
                r = await sim.post("/_sim/config", json={"settlement_currency": "usd",
                                                         "settlement_rates": RATES})
                assert r.status_code == 200, r.text
                shop = await merchants.create_merchant(k, name="fx cli")
                auth = {"Authorization": f"Bearer {shop['secret_key']}"}
                paid = []
                for ccy, amount in PAYMENTS:
                    r = await client.post("/v1/payment_intents", headers=auth, data={
                        "amount": str(amount), "currency": ccy,
                        "payment_method": "pm_card_visa", "confirm": "true"})
                    assert r.json()["status"] == "succeeded", r.text
                    paid.append(r.json())
                r = await client.post("/v1/refunds", headers=auth, data={
                    "payment_intent": paid[2]["id"], "amount": "500"})
                assert r.json()["status"] == "succeeded", r.text
                today = datetime.now(UTC).date()
                report = await sim.get(f"/v1/settlement_reports/{today.isoformat()}")
                assert report.status_code == 200, report.text
                books = (await sim.get("/_sim/authorizations")).json()
        finally:
            await close()

        # what the simulator paid out, from its own books and rates
        expected_bank = expected_fees = 0
        for a in books:
            rate = Decimal(RATES[a["currency"]]) if a["currency"] != "usd" else None

            def usd(minor: int, ccy: str = a["currency"], rate: Decimal | None = rate) -> int:
                return minor if rate is None else convert(Money(minor, ccy), rate, "usd").minor

            fee = PRICING.fee_for(Money(usd(a["amount_captured"]), "usd")).minor
            expected_fees += fee
            expected_bank += usd(a["amount_captured"]) - fee + (
                usd(-a["amount_refunded"]) if a["amount_refunded"] else 0)

        path = tmp_path / f"settlement_{today.isoformat()}.csv"
        path.write_text(report.text)
        imported = kassa("reconcile", "import", "--psp", "simulator", str(path), dsn=dsn)
        assert imported.returncode == 0, imported.stderr
        run = json.loads(imported.stdout)
        assert run["discrepancies"] == 0 and run["rows_matched"] == len(PAYMENTS) + 1
        shown = kassa("reconcile", "report", "run", run["id"], "--format", "json", dsn=dsn)
        assert shown.returncode == 0, shown.stderr
        settled = {s["currency"]: s for s in json.loads(shown.stdout)["summary"]["settled"]}
        assert {c: (s["settlement_currency"], s["exchange_rates"])
                for c, s in settled.items()} == {
            "eur": ("usd", [RATES["eur"]]), "jpy": ("usd", [RATES["jpy"]]),
            "kwd": ("usd", [RATES["kwd"]]), "usd": ("usd", [])}
        assert sum(s["net"] for s in settled.values()) == expected_bank
        daily = kassa("reconcile", "report", "daily", "--date", today.isoformat(),
                      "--format", "json", dsn=dsn)
        assert daily.returncode == 0, daily.stderr
        (sim_day,) = [p for p in json.loads(daily.stdout)["psps"] if p["psp"] == "simulator"]
        assert sim_day["receivable_left"] == []  # zero in every currency
        assert {p["currency"]: (p["fee"], p["net"]) for p in sim_day["settlement_posted"]
                if p["currency"] == "usd"} == {"usd": (expected_fees, expected_bank)}
        assert {c["currency"] for c in sim_day["conversions_posted"]} == {"eur", "jpy", "kwd"}
        text = kassa("reconcile", "report", "daily", "--date", today.isoformat(), dsn=dsn)
        assert "converted by the PSP: 19.99 EUR paid as" in text.stdout, text.stdout
        verify = kassa("ledger", "verify", dsn=dsn)
        assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_simulator_process_started_to_pay_out_in_usd():
    config = SimulatorConfig(settlement_currency="usd", settlement_rates={"eur": "1.0850",
                                                                          "kwd": "3.2541"})
    with running_simulator_process(config=config) as url:
        shown = httpx.get(f"{url}/_sim/config", timeout=10).json()
    assert (shown["settlement_currency"], shown["settlement_rates"]) == (
        "usd", {"eur": "1.0850", "kwd": "3.2541"})
    for bad in (["--settlement-rate", "eur"], ["--settlement-currency", "usd",
                                               "--settlement-rate", "eur=1.08.5"],
                ["--settlement-rate", "eur=1.0850"]):  # a rate needs a settlement currency
        r = subprocess.run([sys.executable, "-m", "kassa.psp.simulator.server", *bad],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and "settlement" in r.stderr, r.stderr
