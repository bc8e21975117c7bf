"""Failover between two simulator accounts, counted at both ends (each simulator's own
books against kassa's payments and ledger):

- A refuses connections → payments succeed at B, each try its own charge; A's breaker
  opens after exactly the configured volume, then half-opens and closes once A is back.
- A charges, then times out / answers 503 / answers garbage → never sent to B; recovery
  resolves the attempt at A.
- A refuses the request itself (a 400, not a decline) → a processing_error, not B.
- every decline code at A → the 402, never a try at B.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from kassa.psp.breaker import BreakerState
from kassa.psp.simulator import SimulatorConfig
from kassa.psp.simulator.server import build_server
from kassa.services import recovery
from tests.integration.routing.conftest import A, B, World, routed_world
from tests.support.processes import free_port
from tests.support.recovery import make_due
from tests.support.simulator_server import running_simulator
from tests.support.uvicorn_servers import serving_in_thread

PRIORITY = {"strategy": "priority", "psps": [A, B]}
DECLINES = {
    "pm_card_chargeDeclined": "generic_decline",
    "pm_card_chargeDeclinedInsufficientFunds": "insufficient_funds",
    "pm_card_chargeDeclinedLostCard": "lost_card",
    "pm_card_chargeDeclinedStolenCard": "stolen_card",
    "pm_card_chargeDeclinedExpiredCard": "expired_card",
    "pm_card_chargeDeclinedIncorrectCvc": "incorrect_cvc",
    "pm_card_chargeDeclinedProcessingError": "processing_error",
}


@pytest.fixture(scope="module")
def sim_b_url() -> Iterator[str]:
    with running_simulator() as url:
        yield url


@pytest.fixture(scope="module")
def sim_a_url() -> Iterator[str]:
    with running_simulator(SimulatorConfig(timeout_hang_s=2.5)) as url:
        yield url


async def assert_both_ends(world: World) -> None:
    """Each simulator's captured authorisations are kassa's succeeded payments at that
    account, one each, and kassa's ledger owes what the simulator captured."""
    succeeded = await world.kassa_succeeded()
    for psp in (A, B):
        captured = [a for a in await world.books(psp) if a["status"] == "captured"]
        assert len(captured) == succeeded[psp], (psp, captured, succeeded)
        keys = [a["idempotency_key"] for a in captured]
        assert len(set(keys)) == len(keys)
        rows = await world.kassa.pool.fetch(
            "SELECT a.id, a.psp, a.status, p.status AS payment FROM attempts a"
            " JOIN payment_intents p ON p.id = a.payment_intent_id WHERE a.id = ANY($1)",
            keys)
        assert all(r["psp"] == psp and r["status"] == "succeeded" and
                   r["payment"] == "succeeded" for r in rows) and len(rows) == len(keys)
        assert await world.receivable(psp) == sum(a["amount_captured"] for a in captured)
    doubles = await world.kassa.pool.fetchval(
        "SELECT count(*) FROM (SELECT payment_intent_id FROM attempts"
        " WHERE merchant_id = $1 AND operation = 'authorize' AND status = 'succeeded'"
        " GROUP BY 1 HAVING count(*) > 1) d", world.merchant_id)
    assert doubles == 0


async def test_a_refusing_connections_fails_over_to_b_and_its_breaker_opens_then_heals(
        dsn, sim_b_url):
    port = free_port()  # nothing listens there: connection refused
    async with routed_world(dsn, f"http://127.0.0.1:{port}", sim_b_url,
                            breaker_min_volume=5, breaker_cooldown_seconds=4.0,
                            breaker_probes=2) as world:
        await world.route(PRIORITY)
        paid = []
        for i in range(12):
            r = await world.pay(amount=1000 + i)
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "succeeded"
            paid.append(r.json())
        tries = [await world.attempts(p["id"]) for p in paid]
        # the first five tried A (failed: not processed), then B; A's breaker opened at
        # the fifth failure, so the rest went straight to B
        for t in tries[:5]:
            assert [(x["psp"], x["status"]) for x in t] == [(A, "failed"), (B, "succeeded")]
            assert t[0]["error"]["code"] == "psp_unavailable"
        for t in tries[5:]:
            assert [(x["psp"], x["status"]) for x in t] == [(B, "succeeded")]
        monitor = world.kassa.router.monitor  # type: ignore[attr-defined]
        assert monitor.breaker(A).state is BreakerState.OPEN
        # the charge history shows both tries, the payment the one that succeeded
        charges = (await world.api.get(f"/v1/charges?payment_intent={paid[0]['id']}",
                                       headers=world.auth)).json()["data"]
        assert sorted(c["status"] for c in charges) == ["failed", "succeeded"]
        assert paid[0]["latest_charge"] == tries[0][1]["id"]
        metrics = (await world.api.get("/metrics")).text
        assert f'kassa_psp_breaker_state{{psp="{A}"}} 2.0' in metrics
        assert (f'kassa_routing_failovers_total{{from_psp="{A}",reason="unavailable",'
                f'to_psp="{B}"}} 5.0') in metrics
        assert f'kassa_psp_requests_total{{operation="authorize",outcome="unavailable",' \
               f'psp="{A}"}} 5.0' in metrics

        # A comes back; after the cool-down the breaker lets probes through to A
        server = build_server("127.0.0.1", port)
        with serving_in_thread(server, "sim-a-back"):
            await asyncio.sleep(4.1)
            assert monitor.breaker(A).state is BreakerState.HALF_OPEN
            for i in range(2):
                r = await world.pay(amount=2000 + i)
                assert r.json()["status"] == "succeeded", r.text
                assert r.json()["latest_charge"] in {
                    a["idempotency_key"] for a in await world.books(A)}
            assert monitor.breaker(A).state is BreakerState.CLOSED
            r = await world.pay(amount=3000)
            assert (await world.attempts(r.json()["id"]))[0]["psp"] == A
            assert await world.kassa_succeeded() == {A: 3, B: 12}
            await assert_both_ends(world)


@pytest.mark.parametrize("fault", ["timeout_after_charge", "error_after_charge",
                                   "garbage_after_charge"])
async def test_an_unknown_outcome_at_a_is_resolved_at_a_never_sent_to_b(
        dsn, sim_a_url, sim_b_url, fault):
    async with routed_world(dsn, sim_a_url, sim_b_url, psp_timeout_seconds=1.0) as world:
        await world.route(PRIORITY)
        r = await world.sims[A].post("/_sim/faults", json={"faults": [fault]})
        assert r.status_code == 200, r.text
        r = await world.pay(amount=4321)
        assert r.status_code == 200, r.text
        pi = r.json()
        assert pi["status"] == "processing"  # the outcome is open: nobody guesses
        assert [(a["psp"], a["status"]) for a in await world.attempts(pi["id"])] == \
            [(A, "unknown")]
        assert await world.books(B) == []
        await asyncio.sleep(1.6)  # the hung answer at A is gone for good
        await make_due(world.kassa, pi["id"])
        assert await recovery.recover_open_attempts(world.kassa) == 1
        got = (await world.api.get(f"/v1/payment_intents/{pi['id']}",
                                   headers=world.auth)).json()
        assert got["status"] == "succeeded" and got["amount_received"] == 4321
        assert [(a["psp"], a["status"]) for a in await world.attempts(pi["id"])] == \
            [(A, "succeeded")]
        assert await world.books(B) == []
        await assert_both_ends(world)


async def test_a_refusing_the_request_is_not_failed_over(dsn, sim_a_url, sim_b_url):
    async with routed_world(dsn, sim_a_url, sim_b_url) as world:
        await world.route(PRIORITY)
        await world.sims[A].post("/_sim/faults", json={"faults": ["refuse"]})
        r = await world.pay()
        assert r.status_code == 402, r.text
        assert r.json()["error"]["decline_code"] == "processing_error"
        pi = r.json()["error"]["payment_intent"]
        assert [(a["psp"], a["status"]) for a in await world.attempts(pi["id"])] == \
            [(A, "failed")]
        assert await world.books(B) == []


async def test_declines_are_never_retried_elsewhere(dsn, sim_a_url, sim_b_url):
    async with routed_world(dsn, sim_a_url, sim_b_url) as world:
        await world.route(PRIORITY)
        for pm, code in DECLINES.items():
            r = await world.pay(pm=pm)
            assert r.status_code == 402, r.text
            assert r.json()["error"]["decline_code"] == code
            pi = r.json()["error"]["payment_intent"]
            assert [(a["psp"], a["status"]) for a in await world.attempts(pi["id"])] == \
                [(A, "failed")], pm
        books_a = await world.books(A)
        assert [a["status"] for a in books_a] == ["declined"] * len(DECLINES)
        assert await world.books(B) == []
        assert await world.kassa_succeeded() == {}


async def test_without_a_configuration_the_default_account_takes_everything(
        dsn, sim_a_url, sim_b_url):
    async with routed_world(dsn, sim_a_url, sim_b_url) as world:
        for _ in range(3):
            assert (await world.pay()).json()["status"] == "succeeded"
        assert await world.kassa_succeeded() == {A: 3}
        await assert_both_ends(world)


async def test_rules_route_by_currency_and_a_volume_split_is_stable(dsn, sim_a_url, sim_b_url):
    async with routed_world(dsn, sim_a_url, sim_b_url) as world:
        await world.route({"strategy": "volume_split", "split": [
            {"psp": A, "percent": 50}, {"psp": B, "percent": 50}]},
            rules=[{"name": "eur_to_b", "conditions": {"currency": "eur"},
                    "route": {"strategy": "single", "psp": B}}])
        eur = [await world.pay(currency="eur") for _ in range(5)]
        assert [(await world.attempts(r.json()["id"]))[0]["psp"] for r in eur] == [B] * 5
        usd = [(await world.pay()).json() for _ in range(40)]
        psps = [(await world.attempts(p["id"]))[0]["psp"] for p in usd]
        assert 8 <= psps.count(A) <= 32, psps  # about half each
        metrics = (await world.api.get("/metrics")).text
        assert ('kassa_routing_decisions_total{explored="false",psp="sim_b",rule="eur_to_b",'
                'strategy="single"} 5.0') in metrics
        await assert_both_ends(world)


async def test_the_breaker_steers_before_sending_when_a_is_known_down(dsn, sim_b_url):
    port = free_port()
    async with routed_world(dsn, f"http://127.0.0.1:{port}", sim_b_url,
                            breaker_min_volume=3, breaker_cooldown_seconds=60) as world:
        await world.route(PRIORITY)
        for _ in range(3):
            await world.pay()
        started = time.monotonic()
        r = await world.pay()
        assert r.json()["status"] == "succeeded"
        assert [x["psp"] for x in await world.attempts(r.json()["id"])] == [B]
        assert time.monotonic() - started < 2
