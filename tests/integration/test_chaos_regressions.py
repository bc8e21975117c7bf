"""Directed reproductions of what the chaos property (test_property_psp_interleavings.py)
found, one test each, against real PostgreSQL and the simulator on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from kassa import bootstrap
from kassa.api.app import create_app
from kassa.config import Settings
from kassa.ledger.verify import verify
from kassa.psp.simulator import SimulatorConfig
from kassa.services import merchants, recovery
from kassa.services.context import Kassa
from tests.support.databases import migrated_database
from tests.support.recovery import make_due
from tests.support.simulator_server import running_simulator

PSP_TIMEOUT = 0.3


@dataclass
class Setup:
    kassa: Kassa
    api: httpx.AsyncClient
    sim: httpx.AsyncClient
    auth: dict[str, str]

    async def post(self, path: str, **data: str) -> httpx.Response:
        return await self.api.post(path, headers=self.auth, data=data)

    async def get(self, pid: str) -> dict[str, Any]:
        r = await self.api.get(f"/v1/payment_intents/{pid}", headers=self.auth)
        body: dict[str, Any] = r.json()
        return body

    async def fault(self, kind: str) -> None:
        r = await self.sim.post("/_sim/faults", json={"faults": [kind]})
        assert r.status_code == 200, r.text

    async def sim_auth(self, key: str) -> dict[str, Any]:
        auth: dict[str, Any] = next(
            a for a in (await self.sim.get("/_sim/authorizations")).json()
            if a["idempotency_key"] == key)
        return auth

    async def recover(self, pid: str) -> None:
        """Every waiting attempt of ``pid`` looked at, until none is due."""
        await make_due(self.kassa, pid)
        for _ in range(5):
            await recovery.recover_open_attempts(self.kassa)
            if not await self.kassa.pool.fetchval(
                    "SELECT count(*) FROM attempts WHERE payment_intent_id = $1"
                    " AND next_check_at <= now()", pid):
                return

    async def attempts(self, pid: str) -> list[tuple[str, str]]:
        return [(r["operation"], r["status"]) for r in await self.kassa.pool.fetch(
            "SELECT operation, status FROM attempts WHERE payment_intent_id = $1"
            " ORDER BY created_at, id", pid)]


@pytest.fixture(scope="module")
def regress_sim_url() -> Iterator[str]:
    with running_simulator(SimulatorConfig(async_delay_ms=None, timeout_hang_s=0.6)) as url:
        yield url


@pytest.fixture(scope="module")
async def regress_kassa(server_url: str, settings: Settings, regress_sim_url: str
                        ) -> AsyncIterator[Kassa]:
    with migrated_database(server_url, "kassa_regress") as url:
        k, close = await bootstrap.build(settings.model_copy(update={
            "simulator_url": regress_sim_url, "psp_timeout_seconds": PSP_TIMEOUT}), url,
            pool_size=6)
        try:
            yield k
        finally:
            await close()


@pytest.fixture
async def setup(regress_kassa: Kassa, regress_sim_url: str) -> AsyncIterator[Setup]:
    m = await merchants.create_merchant(regress_kassa, name="regressions")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(
            app=create_app(kassa=regress_kassa, key_cache_seconds=0.0)),
            base_url="http://kassa.test") as api, \
            httpx.AsyncClient(base_url=regress_sim_url) as sim:
        yield Setup(kassa=regress_kassa, api=api, sim=sim,
                    auth={"Authorization": f"Bearer {m['secret_key']}"})


async def make_attempt_due(k: Kassa, attempt_id: str) -> None:
    await k.pool.execute("UPDATE attempts SET next_check_at = now() - interval '1 second'"
                         " WHERE id = $1", attempt_id)


@pytest.mark.parametrize("capture_method", ["automatic", "manual"])
@pytest.mark.parametrize("first", ["void", "authorization", "customer"])
async def test_a_void_of_3ds_whose_answer_was_lost_is_recorded_as_the_cancel(
        setup: Setup, capture_method: str, first: str):
    """Cancel during requires_action; the PSP voids, its answer is lost (timeout), so the
    void attempt is unknown and the payment processing. Whoever looks first — recovery at
    the void, recovery polling the 3-D Secure authorisation, or the customer coming back
    from the PSP's page (where completing changed nothing: it is void) — the cancel must
    be what is recorded: the payment canceled, the void succeeded. (Found by the chaos
    property: the authorisation's finisher read the PSP's ``voided`` as a decline, moved
    the payment to requires_payment_method with a decline error, and the void could then
    never be recorded — IllegalTransition on every look, unknown for ever.)"""
    pi = (await setup.post("/v1/payment_intents", amount="2500", currency="usd",
                           payment_method="pm_card_authenticationRequired",
                           capture_method=capture_method, confirm="true")).json()
    assert pi["status"] == "requires_action"
    await setup.fault("timeout_after_charge")
    r = await setup.post(f"/v1/payment_intents/{pi['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "processing", r.text
    assert (await setup.sim_auth(pi["latest_charge"]))["status"] == "voided"
    void_id = await setup.kassa.pool.fetchval(
        "SELECT id FROM attempts WHERE payment_intent_id = $1 AND operation = 'void'", pi["id"])

    if first == "void":
        await make_attempt_due(setup.kassa, void_id)
        await recovery.recover_open_attempts(setup.kassa)
    elif first == "authorization":
        await make_attempt_due(setup.kassa, pi["latest_charge"])
        await recovery.recover_open_attempts(setup.kassa)
    else:
        async with httpx.AsyncClient() as browser:
            done = await browser.post(pi["next_action"]["redirect_to_url"]["url"] + "/complete",
                                      data={"result": "succeed"})
        assert done.status_code == 303, done.text
        back = await setup.api.get(httpx.URL(done.headers["location"]).raw_path.decode())
        assert back.status_code == 200, back.text
    await setup.recover(pi["id"])  # then everything else

    got = await setup.get(pi["id"])
    assert (got["status"], got["last_payment_error"]) == ("canceled", None), \
        (got["status"], got["last_payment_error"], await setup.attempts(pi["id"]))
    assert await setup.attempts(pi["id"]) == [("authorize", "failed"), ("void", "succeeded")]
    assert (await verify(setup.kassa.pool)).ok


async def test_a_hold_the_psp_already_let_go_is_released_at_its_deadline(setup: Setup):
    """The PSP voided the authorisation on its own (its validity ended first, or an
    operator let it go): at kassa's hold deadline the void is answered ``already_voided``.
    That is the end kassa waited for — the hold is released and the payment ``canceled``
    (``automatic``) — not a refusal to retry for ever with the hold left in the ledger."""
    k = setup.kassa
    pi = (await setup.post("/v1/payment_intents", amount="3000", currency="usd",
                           payment_method="pm_card_visa", capture_method="manual",
                           confirm="true")).json()
    assert pi["status"] == "requires_capture"
    auth = await setup.sim_auth(pi["latest_charge"])
    gone = await setup.sim.post(f"/v1/authorizations/{auth['id']}/void",
                                json={"idempotency_key": f"psp-side-{pi['id']}"})
    assert gone.json()["status"] == "voided", gone.text

    await setup.recover(pi["id"])  # the hold's deadline
    got = await setup.get(pi["id"])
    assert (got["status"], got["cancellation_reason"], got["amount_capturable"]) == \
        ("canceled", "automatic", 0), (got["status"], await setup.attempts(pi["id"]))
    held = await k.pool.fetchval(
        "SELECT coalesce(sum(e.amount), 0) FROM ledger_transactions t JOIN ledger_entries e"
        " ON e.transaction_id = t.id WHERE (t.hold_ref = $1 OR t.source_id = $1)"
        " AND e.layer = 'pending' AND e.account LIKE 'psp:%'", pi["latest_charge"])
    assert held == 0
    assert await k.pool.fetchval("SELECT next_check_at FROM attempts WHERE id = $1",
                                 pi["latest_charge"]) is None  # nothing left to watch
    assert (await verify(k.pool)).ok
