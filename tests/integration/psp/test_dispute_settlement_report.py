"""A won dispute in the simulator's daily settlement report: the chargeback stays a row of
the day the issuer took the money, and the win is a row of its own (``chargeback_reversal``:
the amount and the chargeback fee come back); reconciliation matches each to the dispute's
withdrawal and reinstatement, posts both, and the PSP's net for them (what it paid the bank)
is what kassa booked on bank:cash: zero less nothing, counted at both ends."""

from __future__ import annotations

import csv
import io
from typing import Any

from kassa.ledger.verify import verify
from kassa.psp.simulator.settlement_report import chargeback_fee
from kassa.services import reconciliation as recon
from tests.integration.psp.conftest import World


async def _bank_cash(world: World) -> int:
    return int(await world.kassa.pool.fetchval(
        "SELECT coalesce(sum(amount), 0)::bigint FROM ledger_entries WHERE account = 'bank:cash'"))


async def won_dispute(world: World) -> tuple[dict[str, Any], str, str, dict[str, Any]]:
    """A paid intent whose dispute the simulator's issuer opened and kassa then won: the
    intent, its authorisation, the simulator's dispute id and kassa's dispute."""
    pi = await world.pay(amount=8_000)
    auth_id = await world.authorization(pi)
    r = await world.sim.post(f"/_sim/disputes/{auth_id}/open", json={})
    assert r.status_code == 200, r.text
    sim_dispute = r.json()["id"]
    await world.flush()
    await world.apply()
    r = await world.sim.post(f"/_sim/disputes/{auth_id}/close", json={"outcome": "won"})
    assert r.status_code == 200, r.text
    await world.flush()
    await world.apply()
    (d,) = (await world.api.get("/v1/disputes", headers=world.auth,
                                params={"payment_intent": pi["id"]})).json()["data"]
    assert d["status"] == "won"
    return pi, auth_id, sim_dispute, d


async def test_a_won_chargeback_and_its_reversal_are_each_reconciled(world: World, tmp_path):
    pi, auth_id, sim_dispute, d = await won_dispute(world)

    r = await world.sim.post("/_sim/settlement_report", json={"inject": {}, "seed": 0})
    assert r.status_code == 200, r.text
    text = r.json()["csv"]
    rows = [row for row in csv.DictReader(io.StringIO(text))
            if row["psp_reference"] in (auth_id, sim_dispute)]
    fee = chargeback_fee("usd")
    assert sorted((row["type"], int(row["gross"]), int(row["fee"]), row["status"])
                  for row in rows) == sorted([
        ("charge", 8_000, int(next(x["fee"] for x in rows if x["type"] == "charge")),
         "captured"),
        ("chargeback", -8_000, fee, "charged_back"),
        ("chargeback_reversal", 8_000, -fee, "reversed")])
    disputed_net = sum(int(row["net"]) for row in rows if row["type"] != "charge")
    assert disputed_net == 0  # the PSP paid the bank nothing for a dispute the merchant won

    path = tmp_path / "day.csv"
    path.write_text(text)
    before = await _bank_cash(world)
    run = await recon.import_report(world.kassa, psp="simulator", path=path)
    items = await world.kassa.pool.fetch(
        "SELECT category, matched, problem, posted, gross, fee, kassa_status, psp_status"
        " FROM reconciliation_items WHERE run_id = $1 AND matched = $2 ORDER BY category",
        run["id"], d["id"])
    assert [(i["category"], i["problem"], i["posted"], i["gross"], i["fee"]) for i in items] \
        == [("chargeback", None, True, -8_000, fee),
            ("chargeback_reversal", None, True, 8_000, -fee)], [dict(i) for i in items]
    missing = await world.kassa.pool.fetch(
        "SELECT kind, category FROM reconciliation_discrepancies WHERE run_id = $1"
        " AND kassa_object = $2", run["id"], d["id"])
    assert missing == []
    # bank:cash took the PSP's net of every posted row: for the dispute's two rows, nothing
    posted_net = int(await world.kassa.pool.fetchval(
        "SELECT coalesce(sum(gross - fee), 0)::bigint FROM reconciliation_items"
        " WHERE run_id = $1 AND posted", run["id"]))
    assert await _bank_cash(world) - before == posted_net
    report = await verify(world.kassa.pool)
    assert report.ok, report.problems
