"""The simulator as its own process keeps its memory while its clients come and go."""

from __future__ import annotations

import uuid

import httpx

from kassa.domain.money import Money
from kassa.domain.payments import Operation
from kassa.psp.base import AttemptRef, AuthorizeRequest, Outcome
from kassa.psp.simulator import SimulatorAdapter
from kassa.vault.test_cards import TEST_PAYMENT_METHODS
from tests.support.simulator_server import running_simulator_process


async def test_state_outlives_the_client() -> None:
    key = f"att_{uuid.uuid4().hex}"
    request = AuthorizeRequest(idempotency_key=key, amount=Money(500, "usd"),
                               card=TEST_PAYMENT_METHODS["pm_card_visa"], capture=True,
                               merchant_id="mer_process")
    with running_simulator_process(0) as base_url:
        async with httpx.AsyncClient() as client:
            first = await SimulatorAdapter(client, base_url).authorize(request)
        async with httpx.AsyncClient() as client:  # a "restarted" kassa asks again
            status = await SimulatorAdapter(client, base_url).lookup(AttemptRef(
                Operation.AUTHORIZE, key, Money(500, "usd"), "mer_process", "pi_process"))
            assert (await client.get(f"{base_url}/_sim/stats")).json()["authorizations"] == 1

    assert first.outcome is Outcome.CAPTURED
    assert (status.outcome, status.psp_reference) == (Outcome.CAPTURED, first.psp_reference)
