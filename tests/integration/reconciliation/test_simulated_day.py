"""A simulated day, counted at both ends: payments and refunds through kassa's API to the
simulator (its own database and simulator, so nothing else is in the day), the simulator's
settlement report of what it really processed with known discrepancies of every kind
injected, and a reconciliation run that reports exactly those, auto-resolves the resolvable
one, posts the settlement of the rest, leaves the PSP receivable at exactly the unsettled
rows' amounts (zero for a clean day), verifies, and changes nothing when imported twice."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import pytest

from kassa.api.app import create_app
from kassa.db import reconciliation as rdb
from kassa.ledger.verify import verify
from kassa.services import merchants, recovery
from kassa.services import reconciliation as recon
from kassa.services.context import Kassa

PAYMENTS = 2000
REFUNDS = 150
INJECT = {"missing_in_kassa": 3, "missing_at_psp": 4, "amount_mismatch": 5,
          "fee_mismatch": 6, "currency_mismatch": 2, "status_mismatch": 3}


async def receivable(k: Kassa) -> dict[str, int]:
    return {r["currency"]: r["total"] for r in await rdb.receivable(k.pool, psp="simulator")
            if r["total"]}


async def settlement_report(sim: httpx.AsyncClient, tmp_path: Path, name: str,
                            inject: dict[str, int], seed: int = 7) -> tuple[Path, list[dict]]:
    r = await sim.post("/_sim/settlement_report", json={"inject": inject, "seed": seed})
    assert r.status_code == 200, r.text
    path = tmp_path / name
    path.write_text(r.json()["csv"])
    return path, r.json()["injected"]


async def test_a_simulated_day_reports_exactly_the_injected_discrepancies(world, tmp_path):
    k, client, sim = world
    shop = await merchants.create_merchant(k, name="recon day")
    auth = {"Authorization": f"Bearer {shop['secret_key']}"}

    async def pay(i: int) -> dict:
        currency = ("usd", "eur", "jpy")[i % 3]
        r = await client.post("/v1/payment_intents", headers=auth, data={
            "amount": str(500 + i), "currency": currency, "payment_method": "pm_card_visa",
            "confirm": "true"})
        assert r.json()["status"] == "succeeded", r.text
        return dict(r.json())

    paid: list[dict] = []
    for start in range(0, PAYMENTS, 50):
        paid += await asyncio.gather(*(pay(i) for i in range(start, min(start + 50, PAYMENTS))))
    for batch in range(0, REFUNDS, 50):
        rs = await asyncio.gather(*(client.post("/v1/refunds", headers=auth, data={
            "payment_intent": p["id"], "amount": "100"}) for p in paid[batch:batch + 50]))
        assert all(r.json()["status"] == "succeeded" for r in rs)
    # one payment the PSP captured while kassa was told 503: kassa has it `processing`
    await sim.post("/_sim/faults", json={"faults": ["error_after_charge"]})
    r = await client.post("/v1/payment_intents", headers=auth, data={
        "amount": "777", "currency": "usd", "payment_method": "pm_card_visa",
        "confirm": "true"})
    assert r.json()["status"] == "processing", r.text
    processing = r.json()["id"]
    assert await receivable(k)  # the PSP owes kassa the day's money

    path, injected = await settlement_report(sim, tmp_path, "day.csv", INJECT)
    run = await recon.import_report(k, psp="simulator", path=path)
    rows_in_file = len(path.read_text().splitlines()) - 1
    assert run["status"] == "completed" and run["rows_read"] == rows_in_file

    found, more = await recon.list_discrepancies(k, run_id=run["id"], limit=100,
                                                 starting_after=None)
    assert not more
    expected = Counter(i["kind"] for i in injected)
    expected["status_mismatch"] += 1  # the processing payment, which the PSP captured
    assert Counter(d["kind"] for d in found) == expected
    by_ref = {(d["kind"], d["psp_reference"]) for d in found if d["psp_reference"]}
    for i in injected:
        if i["kind"] != "missing_at_psp":  # kassa's side: named by kassa's object
            assert (i["kind"], i["psp_reference"]) in by_ref
    missing = {d["kassa_object"] for d in found if d["kind"] == "missing_at_psp"}
    dropped = {i["psp_reference"] for i in injected if i["kind"] == "missing_at_psp"}
    pis = await k.pool.fetch("SELECT id FROM payment_intents WHERE psp_reference = ANY($1)",
                             list(dropped))
    assert missing == {p["id"] for p in pis}
    auto = [d for d in found if d["resolution"]["status"] == "auto_resolved"]
    assert [d["kassa_object"] for d in auto] == [processing]
    assert run["discrepancies"] == len(found)
    assert run["rows_matched"] == rows_in_file - sum(
        n for kind, n in INJECT.items() if kind not in ("missing_at_psp", "fee_mismatch"))

    # recovery, asked by the auto-resolution, records the capture the PSP made
    await recovery.recover_open_attempts(k)
    done = (await client.get(f"/v1/payment_intents/{processing}", headers=auth)).json()
    assert done["status"] == "succeeded"

    # what stays in the receivable is exactly what was not settled: the mismatched rows'
    # kassa amounts and the rows the PSP did not report (the processing payment's row was
    # posted: once recovery recorded its capture, it is settled too)
    unsettled: Counter[str] = Counter()
    for d in found:
        if d["kind"] in ("amount_mismatch", "currency_mismatch", "status_mismatch",
                         "missing_at_psp") and d["resolution"]["status"] != "auto_resolved":
            ccy = d["currency"] if d["kind"] != "currency_mismatch" else d["kassa_value"]
            unsettled[ccy] += d["kassa_amount"]
    assert await receivable(k) == {c: v for c, v in unsettled.items() if v}
    report = await verify(k.pool)
    assert report.ok, report.problems

    # the same file again: the same run, nothing posted twice
    before = await receivable(k)
    again = await recon.import_report(k, psp="simulator", path=path)
    assert again["id"] == run["id"]
    assert await receivable(k) == before
    assert await k.pool.fetchval("SELECT count(*) FROM reconciliation_runs") == 1

    # an open discrepancy is resolved later, by someone, for a reason
    open_one = next(d for d in found if d["resolution"]["status"] == "open")
    resolved = await recon.resolve_discrepancy(k, discrepancy_id=open_one["id"],
                                               resolved_by="ops@example.com",
                                               reason="PSP confirmed its report was wrong")
    assert resolved["resolution"] == {"status": "resolved", "by": "ops@example.com",
                                      "how": "PSP confirmed its report was wrong",
                                      "at": resolved["resolution"]["at"]}


async def test_a_clean_day_leaves_the_receivable_at_zero(world, tmp_path):
    k, client, sim = world
    await sim.post("/_sim/reset")  # a new day at the acquirer: only what follows is in it
    before = await receivable(k)
    shop = await merchants.create_merchant(k, name="clean day")
    auth = {"Authorization": f"Bearer {shop['secret_key']}"}
    for i in range(40):
        r = await client.post("/v1/payment_intents", headers=auth, data={
            "amount": str(1000 + i), "currency": "usd", "payment_method": "pm_card_visa",
            "confirm": "true"})
        assert r.json()["status"] == "succeeded"
        if i % 4 == 0:
            await client.post("/v1/refunds", headers=auth, data={
                "payment_intent": r.json()["id"], "amount": "250"})
    path, _ = await settlement_report(sim, tmp_path, "clean.csv", {})
    run = await recon.import_report(k, psp="simulator", path=path)
    assert run["rows_read"] == 50 and run["rows_matched"] == 50
    found, _ = await recon.list_discrepancies(k, run_id=run["id"], limit=100,
                                              starting_after=None)
    # the earlier day's payments are not in this report: reported missing at the PSP,
    # but nothing about today's
    assert {d["kind"] for d in found} <= {"missing_at_psp"}
    assert all(d["merchant"] != shop["merchant_id"] for d in found)
    assert await receivable(k) == before  # today's receivable settled to zero
    bank = await k.pool.fetchval(
        "SELECT coalesce(sum(e.amount), 0)::bigint FROM ledger_entries e JOIN"
        " ledger_transactions t ON t.id = e.transaction_id WHERE t.source_id = $1"
        " AND e.account = 'bank:cash'", f"{run['id']}:usd")
    rows = [line.split(",") for line in path.read_text().splitlines()[1:]]
    assert bank == sum(int(r[6]) for r in rows)  # the bank got the report's net, to the cent
    assert (await verify(k.pool)).ok


async def test_runs_through_the_api_are_the_platforms(world):
    import dataclasses

    k, _, _ = world
    operator = await merchants.create_merchant(k, name="the platform")
    other = await merchants.create_merchant(k, name="a shop")
    app = create_app(kassa=dataclasses.replace(k, platform_account=operator["merchant_id"]),
                     key_cache_seconds=0.0)
    ops = {"Authorization": f"Bearer {operator['secret_key']}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://kassa.test") as api:
        r = await api.get("/v1/reconciliation_runs",
                          headers={"Authorization": f"Bearer {other['secret_key']}"})
        assert r.status_code == 403, r.text  # runs span every merchant
        r = await api.get("/v1/reconciliation_runs", headers=ops, params={"limit": 1})
        assert r.status_code == 200, r.text
        listed = r.json()
        assert listed["object"] == "list" and listed["has_more"]
        newest = listed["data"][0]
        older = (await api.get("/v1/reconciliation_runs", headers=ops,
                               params={"starting_after": newest["id"]})).json()["data"]
        assert len(older) == 1 and older[0]["id"] != newest["id"]
        run = older[0]  # the injected day
        got = await api.get(f"/v1/reconciliation_runs/{run['id']}", headers=ops)
        assert got.json() == run
        assert (await api.get("/v1/reconciliation_runs/recon_missing",
                              headers=ops)).status_code == 404
        page = (await api.get(f"/v1/reconciliation_runs/{run['id']}/discrepancies",
                              headers=ops, params={"kind": "amount_mismatch",
                                                   "limit": 100})).json()
        assert len(page["data"]) == INJECT["amount_mismatch"]
        assert {d["kind"] for d in page["data"]} == {"amount_mismatch"}
        r = await api.get(f"/v1/reconciliation_runs/{run['id']}/discrepancies", headers=ops,
                          params={"kind": "rounding"})
        assert r.status_code == 400
        # one still open (the day's test resolved the first open one, maybe of this kind)
        target = next(d["id"] for d in page["data"] if d["resolution"]["status"] == "open")
        key = {**ops, "Idempotency-Key": f"resolve-{target}"}
        body = {"resolved_by": "ops@example.com", "reason": "refund booked by hand"}
        first = await api.post(f"/v1/reconciliation_discrepancies/{target}/resolve",
                               headers=key, data=body)
        assert first.status_code == 200, first.text
        assert first.json()["resolution"]["status"] == "resolved"
        replay = await api.post(f"/v1/reconciliation_discrepancies/{target}/resolve",
                                headers=key, data=body)
        assert replay.json() == first.json() and replay.headers["Idempotent-Replayed"]
        again = await api.post(f"/v1/reconciliation_discrepancies/{target}/resolve",
                               headers=ops, data=body)
        assert again.status_code == 400 and again.json()["error"]["code"] == \
            "discrepancy_not_open"
        missing = await api.post(f"/v1/reconciliation_discrepancies/{target}/resolve",
                                 headers=ops, data={"resolved_by": "x"})
        assert missing.status_code == 400
    # `kassa ledger verify` holds each run's settlement to the rows it posted
    assert (await verify(k.pool)).ok
    class Undo(Exception):
        pass

    with pytest.raises(Undo):  # the tampering is rolled back
        async with k.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE reconciliation_items SET gross = gross + 1 WHERE run_id = $1"
                " AND row_number = (SELECT min(row_number) FROM reconciliation_items"
                " WHERE run_id = $1 AND posted)", run["id"])
            report = await verify(conn)
            assert not report.ok and any(p.startswith(f"settlement {run['id']}:")
                                         for p in report.problems), report.problems
            raise Undo
    assert (await verify(k.pool)).ok


async def test_racing_imports_and_a_second_file_of_the_same_day_post_once(world, tmp_path):
    k, client, sim = world
    await sim.post("/_sim/reset")
    shop = await merchants.create_merchant(k, name="racing day")
    auth = {"Authorization": f"Bearer {shop['secret_key']}"}
    for i in range(10):
        r = await client.post("/v1/payment_intents", headers=auth, data={
            "amount": str(2000 + i), "currency": "usd", "payment_method": "pm_card_visa",
            "confirm": "true"})
        assert r.json()["status"] == "succeeded"
    before = await receivable(k)
    path, _ = await settlement_report(sim, tmp_path, "race.csv", {})
    runs = await asyncio.gather(*(recon.import_report(k, psp="simulator", path=path)
                                  for _ in range(3)))
    assert len({r["id"] for r in runs}) == 1  # one run, whoever got there first
    settled = before["usd"] - (await receivable(k)).get("usd", 0)
    assert settled == sum(2000 + i for i in range(10))
    # the same rows in another file (a re-sent report): matched, never posted twice
    copy = tmp_path / "race-resent.csv"
    copy.write_text(path.read_text() + "\n")
    second = await recon.import_report(k, psp="simulator", path=copy)
    assert second["id"] != runs[0]["id"] and second["rows_read"] == 10
    assert second["rows_matched"] == 10
    found, _ = await recon.list_discrepancies(k, run_id=second["id"], limit=100,
                                              starting_after=None)
    # only the earlier tests' unreported captures of the same day, nothing of this one
    assert all(d["kind"] == "missing_at_psp" and d["merchant"] != shop["merchant_id"]
               for d in found)
    posted = await k.pool.fetchval("SELECT count(*) FROM reconciliation_items"
                                   " WHERE run_id = $1 AND posted", second["id"])
    assert posted == 0  # already settled by the first run
    assert (await receivable(k)).get("usd", 0) == before["usd"] - settled
    assert (await verify(k.pool)).ok


@pytest.mark.parametrize(("body", "message"), [
    ({"inject": {"rounding_error": 1}}, "cannot inject rounding_error"),
    ({"inject": {"amount_mismatch": 10_000}}, "charge rows"),
    ({"inject": {"amount_mismatch": -1}}, "inject maps"),
    ({"inject": [1]}, "inject maps"),
    ({"seed": "x"}, "seed must be an integer"),
    ({"date": "yesterday"}, "Invalid isoformat"),
])
async def test_the_simulators_report_refuses_what_it_cannot_do(world, body, message):
    _, _, sim = world
    r = await sim.post("/_sim/settlement_report", json=body)
    assert r.status_code == 400 and message in r.text, r.text
