"""The contract suite's PSPs: one harness per adapter (harnesses.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from kassa.psp.simulator import SimulatorConfig
from tests.integration.psp.contract.harnesses import (
    ADYEN_ACCOUNT,
    ADYEN_API_KEY,
    ADYEN_HMAC_KEY,
    HARNESSES,
    KEY_REPLAYING,
    WEBHOOK_SECRET,
    PSPHarness,
)
from tests.support.simulator_server import running_simulator


@pytest.fixture(scope="module")
def contract_simulator_url() -> Iterator[str]:
    """Its own simulator, so resetting it between tests disturbs no other suite."""
    with running_simulator(SimulatorConfig(
            webhook_secret=WEBHOOK_SECRET, webhook_hold=True, adyen_api_key=ADYEN_API_KEY,
            adyen_merchant_account=ADYEN_ACCOUNT, adyen_hmac_key=ADYEN_HMAC_KEY)) as url:
        yield url


@pytest.fixture(params=sorted(HARNESSES))
async def psp(request: pytest.FixtureRequest) -> AsyncIterator[PSPHarness]:
    async with HARNESSES[request.param](request) as harness:
        yield harness


@pytest.fixture(params=KEY_REPLAYING)
async def replaying_psp(request: pytest.FixtureRequest) -> AsyncIterator[PSPHarness]:
    """Only PSPs whose test server replays a repeated Idempotency-Key (localstripe does
    not: tests/unit/psp/test_stripe_recorded.py covers Stripe's replay instead)."""
    async with HARNESSES[request.param](request) as harness:
        yield harness
