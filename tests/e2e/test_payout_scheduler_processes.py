"""Two `kassa worker --role payout-schedule` processes over 30 simulated days for 100
merchants, their day moved forward by a clock file (KASSA_TEST_CLOCK_FILE): they race on
every day, one is SIGKILLed mid-pass on four days, both are down for three. Each merchant
still gets exactly one period row per period (daily, weekly, monthly), none missing, a
payout for every period that had money, none doubled, every cent that became available
paid out once and itemised, and a ledger that verifies."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from kassa import bootstrap
from kassa.api.app import create_app
from kassa.db import payouts as payouts_db
from kassa.domain.bank_accounts import bank_account
from kassa.domain.payout_schedules import Interval, PayoutSchedule
from kassa.ledger.verify import verify
from kassa.services import balances, merchants, payout_destinations
from kassa.services.context import Kassa
from tests.integration.payouts.test_payout_scheduler import at, available, pay
from tests.support.databases import migrated_database
from tests.support.processes import kassa_process

pytestmark = pytest.mark.slow

DAY = 86_400
DAYS = 30
MERCHANTS = 100
FUNDED = {0, 1, 4, 8, 13, 17, 21, 26, 29}
DOWN = {10, 11, 12}  # nobody runs; day 13 catches up on them
KILLED = {3, 7, 18, 24}  # one scheduler SIGKILLed mid-pass, then started again
ACCOUNT = bank_account(account_holder_name="Jenny Rosen", country="US", currency="usd",
                       routing_number="110000000", account_number="000123456789")
SCHEDULES = {0: PayoutSchedule(interval=Interval.WEEKLY, weekly_anchor="monday"),
             1: PayoutSchedule(interval=Interval.MONTHLY, monthly_anchor=31)}


def set_clock(path: Path, unix: int) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(str(unix))
    tmp.replace(path)  # atomic: a process never reads half a number


@contextmanager
def scheduler(db: str, clock: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {"KASSA_DATABASE_URL": db, "KASSA_ENV": "test", "KASSA_TEST_CLOCK_FILE": str(clock),
           "KASSA_PAYOUT_SCHEDULE_INTERVAL_SECONDS": "0.05"}
    with kassa_process(["worker", "--role", "payout-schedule"], env, log=log) as proc:
        yield proc


def expected_keys(schedule: PayoutSchedule, times: list[int]) -> list[str]:
    """What one scheduler that never died makes on the days anyone ran: the reference."""
    keys: list[str] = []
    through: datetime | None = None
    for t in times:
        now = datetime.fromtimestamp(t, UTC)
        keys += [p.key for p in schedule.catch_up(scheduled_through=through, now=now)]
        through = now
    return keys


@pytest.fixture
async def world(server_url, settings) -> Iterator[tuple[Kassa, httpx.AsyncClient, str]]:
    with migrated_database(server_url, "kassa_sched_race") as db:
        kassa, close = await bootstrap.build(settings, db, pool_size=10)
        app = create_app(kassa=kassa, key_cache_seconds=0.0)
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://kassa.test") as client:
                yield kassa, client, db
        finally:
            await close()


async def test_two_schedulers_killed_and_down_over_thirty_days(world, tmp_path):
    kassa, client, db = world
    shops = []
    for i in range(MERCHANTS):
        m = await merchants.create_merchant(kassa, name=f"race {i}")
        async with kassa.pool.acquire() as conn:
            await payout_destinations.save_destination(
                kassa, conn, destination_id=kassa.ids("bank_account"),
                merchant_id=m["merchant_id"], account=ACCOUNT, created=0)
            if i in SCHEDULES:
                await payouts_db.put_schedule(conn, merchant_id=m["merchant_id"],
                                              schedule=SCHEDULES[i])
        shops.append(m)
    ids = [m["merchant_id"] for m in shops]
    daily = ids[len(SCHEDULES):]
    start = (int(time.time()) // DAY + 2) * DAY  # a midnight after every payment is available
    clock, log = tmp_path / "clock", tmp_path / "schedulers.log"
    times = [start + day * DAY + 3600 for day in range(DAYS)]
    set_clock(clock, times[0])
    days = [time.strftime("%Y-%m-%d", time.gmtime(t)) for t in times]

    async def done_today(day: int) -> int:
        return int(await kassa.pool.fetchval(
            "SELECT count(*) FROM payout_periods WHERE period_key = $1", days[day]))

    async def wait_for(day: int, at_least: int, within: float = 90) -> int:
        deadline = time.monotonic() + within
        while (n := await done_today(day)) < at_least:
            assert time.monotonic() < deadline, f"day {day}: {n} periods\n{log.read_text()}"
            await asyncio.sleep(0.01)
        return n

    killed_at: list[int] = []
    with ExitStack() as stack:
        workers: list[subprocess.Popen[bytes]] = []
        for day in range(DAYS):
            if day in FUNDED:
                for chunk in range(0, MERCHANTS, 25):
                    await asyncio.gather(*(pay(client, m["secret_key"], 1000 + 7 * i + day)
                                           for i, m in enumerate(shops[chunk:chunk + 25],
                                                                 chunk)))
                later = at(kassa, kassa.clock() + 30 * DAY)
                while await balances.release_available_funds(later):
                    pass
            if day in DOWN:
                if day == min(DOWN):
                    for w in workers:
                        w.send_signal(signal.SIGTERM)
                        w.wait(30)
                set_clock(clock, times[day])
                continue
            if day == 0 or day == max(DOWN) + 1:  # started once day 0's money is in
                workers = [stack.enter_context(scheduler(db, clock, log)) for _ in range(2)]
            if day in KILLED:  # one alone, killed once it has made some of the day's periods
                workers[1].send_signal(signal.SIGSTOP)
                set_clock(clock, times[day])
                killed_at.append(await wait_for(day, 1))
                workers[0].send_signal(signal.SIGKILL)
                workers[0].wait(30)
                workers[1].send_signal(signal.SIGCONT)
                workers[0] = stack.enter_context(scheduler(db, clock, log))
            else:
                set_clock(clock, times[day])
            await wait_for(day, len(daily))
            assert all(w.poll() is None for w in workers), log.read_text()
        await asyncio.sleep(0.5)  # a last pass over the last day, if any, finds nothing new
    assert any(n < len(daily) for n in killed_at), killed_at  # some kill was mid-pass

    periods = await kassa.pool.fetch(
        "SELECT merchant_id, period_key, payout FROM payout_periods ORDER BY period_key")
    payouts = await kassa.pool.fetch("SELECT merchant_id, period_key, amount FROM payouts")
    ran = [times[d] for d in range(DAYS) if d not in DOWN]
    for i, m in enumerate(ids):
        mine = [r["period_key"] for r in periods if r["merchant_id"] == m]
        schedule = SCHEDULES.get(i, PayoutSchedule())
        assert mine == sorted(expected_keys(schedule, ran)), (i, mine)
        if i >= len(SCHEDULES):
            assert mine == days  # every day once, the three days nobody ran included
    assert len({(r["merchant_id"], r["period_key"]) for r in payouts}) == len(payouts)
    # money: what each merchant captured (net) is exactly its payouts plus what is left
    nets = dict(await kassa.pool.fetch(
        "SELECT merchant_id, sum(net)::bigint FROM balance_transactions WHERE type = 'charge'"
        " GROUP BY merchant_id"))
    for i, m in enumerate(ids):
        paid = sum(r["amount"] for r in payouts if r["merchant_id"] == m)
        assert paid + await available(kassa, m) == nets[m], i
        if i >= len(SCHEDULES):  # daily: everything available by day 29 went out that day
            assert await available(kassa, m) == 0
    daily_paid = {r["period_key"] for r in payouts if r["merchant_id"] == daily[0]}
    # a funded day's money goes out that day; day 13's (after three days down) to day 10,
    # the oldest period the catch-up makes
    assert daily_paid == {days[d] for d in FUNDED - {13}} | {days[10]}
    contents = await kassa.pool.fetch(
        "SELECT p.id, p.amount, coalesce(sum(b.net), 0)::bigint AS items FROM payouts p"
        " LEFT JOIN balance_transactions b ON b.payout = p.id GROUP BY p.id, p.amount")
    assert contents and all(r["amount"] == r["items"] for r in contents)
    assert (await verify(kassa.pool)).ok
