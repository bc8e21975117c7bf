"""The one race failover could lose money in: recovery presumes a `started` attempt orphaned
and repeats its call at PSP A while the request that made it sends the payment to B. The
attempt is closed for failover only while recovery has never claimed it
(``fail_over_attempt``); these tests run a recovery worker beside the requests, with A's
connection failures slow enough to land on either side of the claim, and count every
simulator's books against kassa's payments: each payment charged once, at one PSP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import httpx
import pytest

from kassa.services import recovery
from tests.integration.routing.conftest import A, B, World, routed_world
from tests.integration.routing.test_failover import assert_both_ends
from tests.support.recovery import make_due
from tests.support.routing_world import RoutingWorld
from tests.support.simulator_server import running_simulator

PRIORITY = {"strategy": "priority", "psps": [A, B]}


@pytest.fixture(scope="module")
def sims() -> Iterator[tuple[str, str]]:
    with running_simulator() as a, running_simulator() as b:
        yield a, b


@contextlib.asynccontextmanager
async def recovery_worker(world: World, every: float = 0.05):
    """Recovery passes in the background, as the worker process runs them."""
    stop = asyncio.Event()

    async def loop() -> None:
        while not stop.is_set():
            await recovery.recover_open_attempts(world.kassa)
            await asyncio.sleep(every)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        stop.set()
        await task


async def drain(world: World) -> None:
    """A is back: recovery settles whatever it holds."""
    for _ in range(20):
        await make_due(world.kassa)
        await recovery.recover_open_attempts(world.kassa, limit=100)
        open_ = await world.kassa.pool.fetchval(
            "SELECT count(*) FROM payment_intents WHERE merchant_id = $1"
            " AND status = 'processing'", world.merchant_id)
        if not open_:
            return
    raise AssertionError("payments still processing after recovery")


async def test_recovery_claimed_first_so_the_payment_stays_at_a(dsn, sims):
    world_http = RoutingWorld()
    a_url, b_url = sims
    weather = world_http.of(a_url)
    # the request's connection fails slowly; recovery's repeat (after 0.3 s) goes through
    # and charges at A while the request still waits — failing over now would charge twice
    weather.first_call_fails, weather.connect_delay = True, 0.8
    async with routed_world(dsn, a_url, b_url, transport=world_http,
                            recovery_after_seconds=0.3) as world:
        await world.route(PRIORITY)
        async with recovery_worker(world):
            r = await world.pay(amount=777)
        assert r.status_code == 200, r.text
        pi = r.json()
        tries = await world.attempts(pi["id"])
        assert [t["psp"] for t in tries] == [A]
        # recovery repeated the call at A (and charged there) while the request waited;
        # the request answered what recovery recorded
        assert [a["status"] for a in await world.books(A)] == ["captured"]
        assert pi["status"] == "succeeded" and pi["latest_charge"] == tries[0]["id"]
        assert await world.books(B) == []
        await drain(world)
        assert await world.kassa_succeeded() == {A: 1}
        await assert_both_ends(world)


async def test_failover_first_then_recovery_never_touches_the_closed_attempt(dsn, sims):
    world_http = RoutingWorld()
    a_url, b_url = sims
    weather = world_http.of(a_url)
    weather.down, weather.connect_delay = True, 0.1
    async with routed_world(dsn, a_url, b_url, transport=world_http,
                            recovery_after_seconds=1.0) as world:
        await world.route(PRIORITY)
        async with recovery_worker(world):
            r = await world.pay(amount=778)
            await asyncio.sleep(1.2)  # past A's attempt's first look, had it stayed open
        assert r.json()["status"] == "succeeded"
        tries = await world.attempts(r.json()["id"])
        assert [(t["psp"], t["status"]) for t in tries] == [(A, "failed"), (B, "succeeded")]
        row = await world.kassa.pool.fetchrow(
            "SELECT tries, next_check_at FROM attempts WHERE id = $1", tries[0]["id"])
        assert row["tries"] == 0 and row["next_check_at"] is None
        weather.down = False
        assert await world.books(A) == []
        await assert_both_ends(world)


async def test_many_payments_racing_recovery_are_each_charged_once(dsn, sims):
    world_http = RoutingWorld()
    a_url, b_url = sims
    weather = world_http.of(a_url)
    # each payment's first call to A fails to connect after 0.05–0.65 s and a repeat goes
    # through; recovery presumes an attempt orphaned after 0.3 s: some payments fail over
    # before any claim, some are claimed (and charged at A by recovery) first
    weather.first_call_fails, weather.connect_delay, weather.connect_jitter = True, 0.05, 0.6
    async with routed_world(dsn, a_url, b_url, transport=world_http,
                            recovery_after_seconds=0.3, breaker_min_volume=1000) as world:
        await world.route(PRIORITY)
        async with recovery_worker(world, every=0.02):
            answers = await asyncio.gather(*(world.pay(amount=1000 + i) for i in range(40)))
        assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
        statuses = [r.json()["status"] for r in answers]
        assert set(statuses) <= {"succeeded", "processing"}
        await drain(world)
        succeeded = await world.kassa_succeeded()
        assert sum(succeeded.values()) == 40, succeeded
        assert succeeded[B] >= 1 and succeeded[A] >= 1, succeeded  # both sides of the race
        for r in answers:
            tries = await world.attempts(r.json()["id"])
            done = [t for t in tries if t["status"] == "succeeded"]
            assert len(done) == 1, tries
            # never a try at B after one at A that was not provably unprocessed
            for earlier in tries[:-1]:
                assert earlier["psp"] == A and earlier["status"] == "failed" and \
                    earlier["error"]["code"] == "psp_unavailable", tries
        await assert_both_ends(world)
        async with httpx.AsyncClient() as c:  # nothing left half-done at either PSP
            for url in (a_url, b_url):
                rows = (await c.get(url + "/_sim/authorizations")).json()
                mine = [x for x in rows if x["merchant_id"] == world.merchant_id]
                assert all(x["status"] == "captured" for x in mine), mine


async def test_a_request_killed_while_b_is_answering_is_resolved_at_b(dsn, sims):
    """The API process dies after the failover committed, during B's call (here: the
    request is cancelled there, so nothing after that point runs): recovery finds the
    payment's attempt at B — once — and A is never asked again."""
    world_http = RoutingWorld()
    a_url, b_url = sims
    world_http.of(a_url).down = True
    async with routed_world(dsn, a_url, b_url, transport=world_http) as world:
        await world.route(PRIORITY)
        r = await world.sims[B].post("/_sim/config", json={"latency_ms": 600})
        assert r.status_code == 200, r.text
        try:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(world.pay(amount=999), timeout=0.3)
        finally:
            await world.sims[B].post("/_sim/config", json={"latency_ms": 0})
        pid = await world.kassa.pool.fetchval(
            "SELECT id FROM payment_intents WHERE merchant_id = $1", world.merchant_id)
        tries = await world.attempts(pid)
        assert [(t["psp"], t["status"]) for t in tries] == [(A, "failed"), (B, "started")]
        refused_before = world_http.of(a_url).connects_refused
        await asyncio.sleep(0.5)  # B's handler finishes what it received
        await drain(world)
        tries = await world.attempts(pid)
        assert [(t["psp"], t["status"]) for t in tries] == [(A, "failed"), (B, "succeeded")]
        assert world_http.of(a_url).connects_refused == refused_before  # A not asked again
        assert await world.kassa_succeeded() == {B: 1}
        await assert_both_ends(world)
