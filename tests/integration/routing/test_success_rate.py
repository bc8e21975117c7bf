"""Success-rate routing between two simulator accounts whose issuers decline 20 % (A) and
2 % (B): traffic shifts to B within the window while the exploration share still reaches
A; every decision and outcome is counted at both ends (each simulator's books)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from tests.integration.routing.conftest import A, B, routed_world
from tests.integration.routing.test_failover import assert_both_ends
from tests.support.routing_world import RoutingWorld
from tests.support.simulator_server import running_simulator

PAYMENTS = 600


@pytest.fixture(scope="module")
def sims() -> Iterator[tuple[str, str]]:
    with running_simulator() as a, running_simulator() as b:
        yield a, b


async def test_traffic_shifts_to_the_better_account_and_exploration_reaches_the_other(
        dsn, sims):
    a_url, b_url = sims
    weather = RoutingWorld()
    weather.of(a_url).decline_share = 0.20
    weather.of(b_url).decline_share = 0.02
    async with routed_world(dsn, a_url, b_url, transport=weather) as world:
        # A listed first: with no data it takes all but the exploration share, until the
        # windows say otherwise (how soon depends on A's first outcomes)
        await world.route({"strategy": "success_rate", "psps": [A, B],
                           "exploration_percent": 10})
        chosen: list[str] = []
        outcomes: Counter[tuple[str, int]] = Counter()
        for i in range(PAYMENTS):
            r = await world.pay(amount=500 + i)
            assert r.status_code in (200, 402), r.text
            pi = r.json() if r.status_code == 200 else r.json()["error"]["payment_intent"]
            tries = await world.attempts(pi["id"])
            assert len(tries) == 1  # a decline is never retried elsewhere
            chosen.append(tries[0]["psp"])
            outcomes[(tries[0]["psp"], r.status_code)] += 1
        last = Counter(chosen[-200:])
        assert last[B] >= 0.8 * 200, last  # shifted to the better account
        assert last[A] >= 0.03 * 200, last  # exploration still reaches A
        # the measured windows, per account
        board = world.kassa.router.monitor.scoreboard  # type: ignore[attr-defined]
        a, b = board.counts(A), board.counts(B)
        assert a.failed == b.failed == 0  # (each window keeps its last 500)
        assert 0.10 < a.declined / a.total < 0.32, a
        assert b.declined / b.total < 0.08, b
        # both ends: the simulators declined exactly what kassa answered 402 for
        for psp in (A, B):
            books = Counter(x["status"] for x in await world.books(psp))
            assert books["declined"] == outcomes[(psp, 402)], (psp, books, outcomes)
            assert books["captured"] == outcomes[(psp, 200)], (psp, books, outcomes)
        metrics = (await world.api.get("/metrics")).text
        assert 'kassa_psp_authorization_success_ratio{psp="sim_b"}' in metrics
        assert 'explored="true",psp="simulator",rule="default",strategy="success_rate"' \
            in metrics
        await assert_both_ends(world)
