"""The scheduled daily pull against the simulator over its HTTP API, days given explicitly:
workers racing make exactly one run per account and day; a day missed while no worker ran
is caught up; a day not published yet is tried again later, not imported empty; the pulled
day's money is counted at both ends (the simulator's own books, kassa's runs and ledger)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from kassa import bootstrap
from kassa.config import Settings
from kassa.db import reconciliation as rdb
from kassa.db import reconciliation_pulls as pulls_db
from kassa.ledger.verify import verify
from kassa.services import merchants
from kassa.services.reconciliation_pull import PullPolicy, pull_settlement_reports


async def test_racing_pull_workers_make_one_run_per_day_and_catch_up(world, tmp_path,
                                                                     own_simulator):
    k, client, sim = world
    shop = await merchants.create_merchant(k, name="pulled day")
    auth = {"Authorization": f"Bearer {shop['secret_key']}"}
    paid = []
    for i in range(30):
        r = await client.post("/v1/payment_intents", headers=auth, data={
            "amount": str(1000 + i), "currency": ("usd", "eur")[i % 2],
            "payment_method": "pm_card_visa", "confirm": "true"})
        assert r.json()["status"] == "succeeded", r.text
        paid.append(r.json())
    for p in paid[:5]:
        r = await client.post("/v1/refunds", headers=auth, data={
            "payment_intent": p["id"], "amount": "300"})
        assert r.json()["status"] == "succeeded"
    today = datetime.now(UTC).date()  # the simulator's books and kassa's ledger: real time
    sources = bootstrap.settlement_report_sources(
        Settings(env="test", simulator_url=own_simulator), sim)
    assert list(sources) == ["simulator"]

    async def pull(worker: str, on: datetime.date, back: int) -> int:  # type: ignore[valid-type]
        return await pull_settlement_reports(
            k, sources=sources, worker=worker, today=on,
            policy=PullPolicy(reports_dir=tmp_path, catch_up_days=back))

    # the worker ran on D: the two days before are imported (nothing moved on them)
    assert await pull("a", today, 2) == 2
    # no worker ran on D+1; on D+2 three race: D is caught up, once; D+1 is still to come
    # at the simulator (404 not published), so it is tried once and left for later
    done = await asyncio.gather(*(pull(w, today + timedelta(days=2), 3) for w in "abc"))
    assert sum(done) == 1
    pulls = {r["report_date"]: r for r in await k.pool.fetch(
        "SELECT * FROM reconciliation_pulls WHERE psp = 'simulator'")}
    assert sorted(pulls) == [today + timedelta(days=n) for n in (-2, -1, 0, 1)]
    assert [pulls[today + timedelta(days=n)]["status"] for n in (-2, -1, 0)] == \
        ["imported"] * 3
    later = pulls[today + timedelta(days=1)]
    assert later["status"] == "failed" and later["tries"] == 1
    assert "not published yet" in later["failure"] and later["retry_at"] > k.clock()
    # the two empty days have the same report (its header), yet a run each: each day is
    # checked for what kassa moved on it (a pulled run's hash is of its day and its file)
    empty = {pulls[today - timedelta(days=n)]["run_id"] for n in (1, 2)}
    assert len(empty) == 2
    assert await k.pool.fetchval("SELECT count(*) FROM reconciliation_runs") == 3

    # the day's run, counted against the simulator's own books and kassa's ledger
    run = await k.pool.fetchrow("SELECT * FROM reconciliation_runs WHERE id = $1",
                                pulls[today]["run_id"])
    books = (await sim.get("/_sim/authorizations")).json()
    assert run["rows_read"] == len(books) + sum(1 for a in books if a["amount_refunded"]) == 35
    assert run["rows_matched"] == 35 and run["discrepancies"] == 0
    # what the simulator says it moved is what the run took out of the PSP receivable
    moved: dict[str, int] = {}
    for a in books:
        moved[a["currency"]] = moved.get(a["currency"], 0) + a["amount_captured"] \
            - a["amount_refunded"]
    settled = {r["currency"]: -r["amount"] for r in await k.pool.fetch(
        "SELECT e.currency, e.amount FROM ledger_entries e JOIN ledger_transactions t"
        " ON t.id = e.transaction_id WHERE t.kind = 'settlement' AND t.source_id LIKE $1"
        " AND e.account = 'psp:simulator:receivable'", run["id"] + ":%")}
    assert settled == moved and sum(moved.values()) == sum(1000 + i for i in range(30)) - 1500
    assert run["source_name"] == f"simulator_{today.isoformat()}.simulator.csv"
    assert (tmp_path / "simulator" / run["source_name"]).exists()
    assert not list((tmp_path / "simulator").glob(".*.part"))
    assert {r["currency"]: r["total"] for r in await rdb.receivable(k.pool, psp="simulator")
            if r["total"]} == {}
    assert (await verify(k.pool)).ok

    # pulling again changes nothing: every due day is imported or waits for its retry
    assert sum(await asyncio.gather(*(pull(w, today + timedelta(days=2), 3)
                                      for w in "ab"))) == 0
    assert await k.pool.fetchval("SELECT count(*) FROM reconciliation_runs") == 3
    assert await k.pool.fetchval("SELECT tries FROM reconciliation_pulls WHERE psp ="
                                 " 'simulator' AND report_date = $1",
                                 today + timedelta(days=1)) == 1


async def test_a_claim_whose_worker_died_is_taken_over(world, tmp_path, own_simulator):
    k, _, sim = world
    day = datetime.now(UTC).date() - timedelta(days=20)
    sources = bootstrap.settlement_report_sources(
        Settings(env="test", simulator_url=own_simulator), sim)
    now = k.clock()
    # a worker claimed the day and died before it imported anything
    assert await pulls_db.claim_pull(k.pool, psp="simulator", day=day, worker="dead", now=now - 901,
                                lease_until=now - 1) is not None
    policy = PullPolicy(reports_dir=tmp_path, catch_up_days=1)
    assert await pull_settlement_reports(k, sources=sources, worker="alive", policy=policy,
                                         today=day + timedelta(days=1)) == 1
    row = await k.pool.fetchrow("SELECT * FROM reconciliation_pulls WHERE psp = 'simulator'"
                                " AND report_date = $1", day)
    assert row["status"] == "imported" and row["claimed_by"] == "alive" and row["tries"] == 2
    # the dead worker's claim is no longer its own: had it come back, its import would roll
    # back instead of making a second run
    stale = pulls_db.PullClaim("simulator", day, "dead", 1)
    assert not await pulls_db.complete_pull(k.pool, stale, run_id=row["run_id"], now=now)


async def test_a_live_import_longer_than_its_lease_is_not_taken_over(world, tmp_path,
                                                                    own_simulator,
                                                                    monkeypatch):
    """The importing worker renews its lease while it imports: a second worker coming after
    the first lease would have run out finds the day still claimed, and the day gets one
    run, by the first worker, on its first claim."""
    k, _, sim = world
    today = datetime.now(UTC).date() - timedelta(days=30)  # a day no other test pulls
    sources = bootstrap.settlement_report_sources(
        Settings(env="test", simulator_url=own_simulator), sim)
    lease = 2
    policy = PullPolicy(reports_dir=tmp_path, catch_up_days=1, lease_seconds=lease,
                        heartbeat_seconds=0.4)
    importing, release = asyncio.Event(), asyncio.Event()
    slow_post = rdb.post_settlement

    async def post_slowly(conn, **kw):  # the import's transaction, held past the lease
        importing.set()
        await release.wait()
        await slow_post(conn, **kw)

    monkeypatch.setattr(rdb, "post_settlement", post_slowly)
    first = asyncio.create_task(pull_settlement_reports(
        k, sources=sources, worker="slow", policy=policy, today=today + timedelta(days=1)))
    try:
        await asyncio.wait_for(importing.wait(), 30)
        await asyncio.sleep(lease * 2 + 1)  # the first lease ran out long ago
        row = await k.pool.fetchrow("SELECT * FROM reconciliation_pulls"
                                    " WHERE psp = 'simulator' AND report_date = $1", today)
        assert row["status"] == "claimed" and row["claimed_by"] == "slow"
        assert row["lease_until"] > k.clock()  # renewed
        # a second worker now: the day is a live worker's, it neither claims nor imports it
        second = await asyncio.wait_for(pull_settlement_reports(
            k, sources=sources, worker="second", policy=policy,
            today=today + timedelta(days=1)), 20)
    finally:  # the first worker's import goes on, whatever was seen
        release.set()
    assert second == 0 and await asyncio.wait_for(first, 60) == 1
    row = await k.pool.fetchrow("SELECT * FROM reconciliation_pulls WHERE psp = 'simulator'"
                                " AND report_date = $1", today)
    assert row["status"] == "imported" and row["claimed_by"] == "slow" and row["tries"] == 1
    assert await k.pool.fetchval("SELECT count(*) FROM reconciliation_runs WHERE id = $1",
                                 row["run_id"]) == 1
    run = await k.pool.fetchrow("SELECT * FROM reconciliation_runs WHERE id = $1",
                                row["run_id"])
    assert run["status"] == "completed"
    # the heartbeat stopped with the import: the lease is no longer renewed
    until = await k.pool.fetchval("SELECT lease_until FROM reconciliation_pulls WHERE psp ="
                                  " 'simulator' AND report_date = $1", today)
    await asyncio.sleep(1.0)
    assert await k.pool.fetchval("SELECT lease_until FROM reconciliation_pulls WHERE psp ="
                                 " 'simulator' AND report_date = $1", today) == until
    assert (await verify(k.pool)).ok


async def test_a_worker_whose_claim_was_taken_over_stops_renewing_it(world):
    k, _, _ = world
    day = datetime.now(UTC).date() - timedelta(days=40)
    now = k.clock()
    old = await pulls_db.claim_pull(k.pool, psp="simulator", day=day, worker="old", now=now - 10,
                               lease_until=now - 1)
    assert old is not None and await pulls_db.renew_pull(k.pool, old, lease_until=now - 1)
    new = await pulls_db.claim_pull(k.pool, psp="simulator", day=day, worker="new", now=now,
                               lease_until=now + 60)
    assert new is not None and new.tries == 2
    # the old worker's renewal neither succeeds nor shortens or steals the new lease
    assert not await pulls_db.renew_pull(k.pool, old, lease_until=now + 3600)
    assert await pulls_db.renew_pull(k.pool, new, lease_until=now + 30)  # never shortened
    assert await k.pool.fetchval("SELECT lease_until FROM reconciliation_pulls WHERE psp ="
                                 " 'simulator' AND report_date = $1", day) == now + 60
