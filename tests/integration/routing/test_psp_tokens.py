"""PSP-own tokens over HTTP with two simulator accounts (A ``simulator``, B ``sim_b``): a
payment method ``<account>:<token>`` goes to that account only, whatever the merchant's
routing configuration says, and never fails over — not when its account refuses
connections, not when its breaker is open. Counted at both ends: each simulator's own
books against kassa's payments and ledger.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kassa.psp.breaker import BreakerState
from kassa.psp.simulator.server import build_server
from kassa.services import merchants, recovery
from tests.integration.routing.conftest import A, B, World, routed_world
from tests.integration.routing.test_failover import assert_both_ends
from tests.support.processes import free_port
from tests.support.recovery import make_due
from tests.support.simulator_server import running_simulator
from tests.support.uvicorn_servers import serving_in_thread

PRIORITY_A_FIRST = {"strategy": "priority", "psps": [A, B]}
PRIORITY_B_FIRST = {"strategy": "priority", "psps": [B, A]}


@pytest.fixture(scope="module")
def two_sims() -> Iterator[tuple[str, str]]:
    with running_simulator() as a, running_simulator() as b:
        yield a, b


async def tries(world: World, payment_id: str) -> list[tuple[str, str]]:
    return [(a["psp"], a["status"]) for a in await world.attempts(payment_id)]


async def test_a_token_routes_to_its_account_against_the_configuration(dsn, two_sims):
    async with routed_world(dsn, *two_sims) as world:
        await world.route(PRIORITY_A_FIRST)
        r = await world.pay(pm=f"{B}:tok_visa", amount=1500)
        assert r.status_code == 200, r.text
        pi = r.json()
        assert pi["status"] == "succeeded" and pi["payment_method"] == f"{B}:tok_visa"
        assert await tries(world, pi["id"]) == [(B, "succeeded")]
        # a token A stored (its own tokenisation) is charged at A, even with B first
        await world.route(PRIORITY_B_FIRST)
        r = await world.sims[A].post("/_sim/tokens", json={
            "number": "5555555555554444", "exp_month": 12, "exp_year": 2034})
        assert r.status_code == 200, r.text
        token = r.json()
        assert token["id"].startswith("simtok_") and token["last4"] == "4444"
        assert "number" not in token
        r = await world.pay(pm=f"{A}:{token['id']}", amount=2500)
        assert r.status_code == 200, r.text
        assert await tries(world, r.json()["id"]) == [(A, "succeeded")]
        books_a = await world.books(A)
        assert [a["amount"] for a in books_a] == [2500]
        auth = (await world.sims[A].get(f"/v1/authorizations/{books_a[0]['id']}")).json()
        assert (auth["brand"], auth["last4"]) == ("mastercard", "4444")
        # the charge shows no card facts: kassa never saw the card behind the token
        charge = (await world.api.get(f"/v1/charges/{r.json()['latest_charge']}",
                                      headers=world.auth)).json()
        assert charge["status"] == "succeeded" and charge["payment_method"] == \
            f"{A}:{token['id']}"
        # a decline on a token is the decline, at that account only
        r = await world.pay(pm=f"{B}:tok_chargeDeclinedInsufficientFunds")
        assert r.status_code == 402, r.text
        assert r.json()["error"]["decline_code"] == "insufficient_funds"
        assert await tries(world, r.json()["error"]["payment_intent"]["id"]) == \
            [(B, "failed")]
        # off-session (merchant-initiated): the PSP holds the stored card, so no kassa
        # customer is needed; a card that always asks for 3-D Secure is declined for it
        r = await world.pay(pm=f"{B}:tok_visa", amount=1600, off_session=True)
        assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
        r = await world.pay(pm=f"{B}:tok_authenticationRequired", off_session=True)
        assert r.status_code == 402, r.text
        assert r.json()["error"]["decline_code"] == "authentication_required"
        assert await world.kassa_succeeded() == {A: 1, B: 2}
        await assert_both_ends(world)


async def test_a_pinned_payment_never_fails_over_when_its_account_is_down(dsn, two_sims):
    """A refuses connections: unpinned payments fail over to B (and A's breaker opens);
    payments pinned to A stay at A, left to recovery, and are charged there once A is
    back. B's books never hold a pinned payment."""
    _, b_url = two_sims
    port = free_port()  # nothing listens there yet: connection refused
    async with routed_world(dsn, f"http://127.0.0.1:{port}", b_url, breaker_min_volume=3,
                            breaker_cooldown_seconds=60.0) as world:
        await world.route(PRIORITY_A_FIRST)
        pinned = []
        r = await world.pay(pm=f"{A}:tok_visa", amount=1101)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "processing"  # not processed at A; nowhere else to go
        pinned.append(r.json()["id"])
        # unpinned: A unavailable, failed over to B; the third failure at A (the pinned
        # payment's was the first) opens A's breaker
        for i in range(2):
            r = await world.pay(amount=1200 + i)
            assert r.json()["status"] == "succeeded", r.text
            assert await tries(world, r.json()["id"]) == [(A, "failed"), (B, "succeeded")]
        monitor = world.kassa.router.monitor  # type: ignore[attr-defined]
        assert monitor.breaker(A).state is BreakerState.OPEN
        r = await world.pay(amount=1300)  # the breaker steers the unpinned straight to B
        assert await tries(world, r.json()["id"]) == [(B, "succeeded")]
        for amount in (1102, 1103):  # pinned to A with its breaker open: still only A
            r = await world.pay(pm=f"{A}:tok_visa", amount=amount)
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "processing"
            pinned.append(r.json()["id"])
        for pid in pinned:
            assert await tries(world, pid) == [(A, "unknown")]
        b_amounts = sorted(a["amount"] for a in await world.books(B))
        assert b_amounts == [1200, 1201, 1300]
        metrics = (await world.api.get("/metrics")).text
        assert 'rule="psp_token",strategy="pinned"' in metrics

        # A comes back: recovery repeats each pinned attempt at A with its key
        server = build_server("127.0.0.1", port)
        with serving_in_thread(server, "sim-a-back"):
            for pid in pinned:
                await make_due(world.kassa, pid)
            assert await recovery.recover_open_attempts(world.kassa) == len(pinned)
            for pid in pinned:
                got = (await world.api.get(f"/v1/payment_intents/{pid}",
                                           headers=world.auth)).json()
                assert got["status"] == "succeeded", got
                assert await tries(world, pid) == [(A, "succeeded")]
            assert sorted(a["amount"] for a in await world.books(A)) == [1101, 1102, 1103]
            assert sorted(a["amount"] for a in await world.books(B)) == b_amounts
            assert await world.kassa_succeeded() == {A: 3, B: 3}
            await assert_both_ends(world)


async def test_tokens_of_unusable_accounts_are_400s(dsn, two_sims):
    a_url, b_url = two_sims
    async with routed_world(dsn, a_url, b_url) as world:
        async def refused(pm: str, currency: str = "usd", code: str = "") -> None:
            r = await world.pay(pm=pm, currency=currency)
            assert r.status_code == 400, r.text
            err = r.json()["error"]
            assert err["type"] == "invalid_request_error"
            assert err["param"] == "payment_method" and err["code"] == code, err

        await refused("nowhere:tok_visa", code="psp_account_unknown")
        await refused(f"{A}:pm_1Nxyz", code="invalid_psp_token")  # not a simulator token
        await refused(f"{B}:tok_visa extra", code="resource_missing")  # not a token at all
        r = await world.api.post("/v1/psp_accounts", headers=world.auth, json={
            "psp": "simulator", "base_url": b_url, "currencies": ["usd"]})
        assert r.status_code == 200, r.text
        own = r.json()["id"]
        r = await world.pay(pm=f"{own}:tok_visa", amount=777)
        assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
        assert await tries(world, r.json()["id"]) == [(own, "succeeded")]
        await refused(f"{own}:tok_visa", currency="eur",
                      code="psp_account_currency_unsupported")
        # another merchant cannot charge tokens of this merchant's account
        other = await merchants.create_merchant(world.kassa, name="Other merchant")
        r = await world.api.post("/v1/payment_intents", headers={
            "Authorization": f"Bearer {other['secret_key']}"}, json={
            "amount": 500, "currency": "usd", "payment_method": f"{own}:tok_visa",
            "confirm": True})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "psp_account_unknown"
        # created while the account was enabled, confirmed after it was disabled: 400,
        # and nothing reached any PSP
        r = await world.api.post("/v1/payment_intents", headers=world.auth, json={
            "amount": 600, "currency": "usd", "payment_method": f"{own}:tok_visa"})
        assert r.status_code == 200, r.text
        later = r.json()["id"]
        r = await world.api.post(f"/v1/psp_accounts/{own}", headers=world.auth,
                                 json={"enabled": False})
        assert r.status_code == 200, r.text
        await refused(f"{own}:tok_visa", code="psp_account_disabled")
        r = await world.api.post(f"/v1/payment_intents/{later}/confirm", headers=world.auth)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "psp_account_disabled"
        assert await world.attempts(later) == []
        # a token the simulator does not know: its refusal, recorded at that account only
        r = await world.pay(pm=f"{A}:simtok_doesnotexist")
        assert r.status_code == 402, r.text
        assert await tries(world, r.json()["error"]["payment_intent"]["id"]) == \
            [(A, "failed")]
        assert [a["amount"] for a in await world.books(B)] == [777]
        assert await world.books(A) == []
