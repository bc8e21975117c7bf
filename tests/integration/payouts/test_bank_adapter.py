"""The bank simulator's adapter over real HTTP on loopback: a payout is received once
whatever is repeated, every network failure lands in the class that says what kassa may
do next, and the bank's later verdicts (paid, failed, returned) reach kassa by polling."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import date

import httpx
import pytest

from kassa.domain.bank_accounts import bank_account
from kassa.domain.money import Money
from kassa.domain.payouts import FailureCode, PayoutStatus
from kassa.payouts.bank_simulator import BankConfig, BankSimulatorAdapter
from kassa.payouts.base import (
    PayoutAdapter,
    PayoutInstruction,
    PayoutOutcomeUnknown,
    PayoutRailUnavailable,
    PayoutRefused,
    PayoutTimeout,
    UnknownTransfer,
)
from tests.support.bank_server import running_bank, running_bank_process

DAY = 86_400
IBAN = bank_account(account_holder_name="Jenny Rosen", country="DE", currency="eur",
                    iban="DE89370400440532013000")


def us(account_number: str):
    return bank_account(account_holder_name="Jenny Rosen", country="US", currency="usd",
                        routing_number="110000000", account_number=account_number)


def instruction(destination=IBAN, minor: int = 5000, *, payout_id: str | None = None
                ) -> PayoutInstruction:
    return PayoutInstruction(payout_id=payout_id or f"po_{uuid.uuid4().hex}",
                             amount=Money(minor, destination.currency),
                             destination=destination, description="weekly payout")


@pytest.fixture(scope="module")
def bank_url() -> Iterator[str]:
    with running_bank(BankConfig(paid_after_s=DAY, fail_after_s=60,
                                 return_after_s=3 * DAY, timeout_hang_s=2)) as url:
        yield url


@pytest.fixture
async def client(bank_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=1.0) as c:
        yield c


@pytest.fixture
def adapter(client: httpx.AsyncClient, bank_url: str) -> BankSimulatorAdapter:
    return BankSimulatorAdapter(client, bank_url)


async def advance(client: httpx.AsyncClient, bank_url: str, seconds: float) -> None:
    (await client.post(f"{bank_url}/_bank/clock", json={"advance_s": seconds})
     ).raise_for_status()


async def faults(client: httpx.AsyncClient, bank_url: str, *names: str) -> None:
    (await client.post(f"{bank_url}/_bank/faults", json={"faults": list(names)})
     ).raise_for_status()


async def received(client: httpx.AsyncClient, bank_url: str, payout_id: str) -> int:
    listing = (await client.get(f"{bank_url}/_bank/transfers")).json()["data"]
    return sum(1 for t in listing if t["reference"] == payout_id)


def test_it_is_a_payout_adapter(adapter):
    assert isinstance(adapter, PayoutAdapter)


async def test_sent_in_transit_then_paid_and_repeats_are_one_transfer(adapter, client,
                                                                      bank_url):
    order = instruction()
    sent = await adapter.send(order)
    assert (sent.payout_id, sent.status, sent.amount) == (
        order.payout_id, PayoutStatus.IN_TRANSIT, Money(5000, "eur"))
    assert isinstance(sent.arrival_date, date) and sent.failure_code is None
    assert (await adapter.send(order)).rail_reference == sent.rail_reference
    assert await received(client, bank_url, order.payout_id) == 1
    await advance(client, bank_url, DAY)
    paid = await adapter.get(payout_id=order.payout_id)
    assert (paid.status, paid.rail_reference, paid.returned) == (
        PayoutStatus.PAID, sent.rail_reference, False)


async def test_a_failing_account_fails_with_stripes_code(adapter, client, bank_url):
    order = instruction(us("000111111116"), 1200)
    assert (await adapter.send(order)).status is PayoutStatus.IN_TRANSIT
    await advance(client, bank_url, 60)
    failed = await adapter.get(payout_id=order.payout_id)
    assert (failed.status, failed.failure_code, failed.returned) == (
        PayoutStatus.FAILED, FailureCode.NO_ACCOUNT, False)
    assert failed.failure_message


async def test_paid_then_returned_days_later(adapter, client, bank_url):
    order = instruction(us("000555555556"), 800)
    await adapter.send(order)
    await advance(client, bank_url, DAY)
    assert (await adapter.get(payout_id=order.payout_id)).status is PayoutStatus.PAID
    await advance(client, bank_url, 3 * DAY)
    returned = await adapter.get(payout_id=order.payout_id)
    assert (returned.status, returned.failure_code, returned.returned) == (
        PayoutStatus.FAILED, FailureCode.ACCOUNT_CLOSED, True)


async def test_forced_return_through_the_control_plane(adapter, client, bank_url):
    order = instruction()
    sent = await adapter.send(order)
    await advance(client, bank_url, DAY)
    response = await client.post(f"{bank_url}/_bank/transfers/{sent.rail_reference}/fail",
                                 json={"failure_code": "account_frozen"})
    assert response.status_code == 200
    got = await adapter.get(payout_id=order.payout_id)
    assert (got.status, got.failure_code, got.returned) == (
        PayoutStatus.FAILED, FailureCode.ACCOUNT_FROZEN, True)


@pytest.mark.parametrize(("fault", "raised"), [
    ("error", PayoutOutcomeUnknown),  # a 503: kassa cannot know nothing was received
    ("timeout_before_accept", PayoutTimeout),
    ("refuse", PayoutRefused),
])
async def test_not_received_so_sending_again_is_safe(adapter, client, bank_url, fault, raised):
    order = instruction()
    await faults(client, bank_url, fault)
    with pytest.raises(raised):
        await adapter.send(order)
    with pytest.raises(UnknownTransfer):  # asking tells kassa the bank never had it
        await adapter.get(payout_id=order.payout_id)
    assert (await adapter.send(order)).status is PayoutStatus.IN_TRANSIT
    assert await received(client, bank_url, order.payout_id) == 1


@pytest.mark.parametrize("fault", ["error_after_accept", "garbage_after_accept",
                                   "timeout_after_accept"])
async def test_received_but_answer_lost_is_resolved_by_asking(adapter, client, bank_url,
                                                              fault):
    order = instruction()
    await faults(client, bank_url, fault)
    expected = PayoutTimeout if fault == "timeout_after_accept" else PayoutOutcomeUnknown
    with pytest.raises(expected):
        await adapter.send(order)
    got = await adapter.get(payout_id=order.payout_id)
    assert got.status is PayoutStatus.IN_TRANSIT
    assert (await adapter.send(order)).rail_reference == got.rail_reference  # no second
    assert await received(client, bank_url, order.payout_id) == 1


async def test_another_payout_under_a_used_id_is_never_refused(adapter, client, bank_url):
    """The bank holds a transfer under that id: "refused" would give the money back while
    the bank may pay it, so the answer is unknown and kassa follows the bank's transfer."""
    order = instruction()
    sent = await adapter.send(order)
    other = PayoutInstruction(payout_id=order.payout_id, amount=Money(5001, "eur"),
                              destination=IBAN)
    with pytest.raises(PayoutOutcomeUnknown, match="different transfer"):
        await adapter.send(other)
    assert (await adapter.get(payout_id=order.payout_id)).rail_reference == sent.rail_reference
    assert await received(client, bank_url, order.payout_id) == 1


async def test_an_invalid_destination_is_refused_with_its_code(client, bank_url):
    response = await client.post(f"{bank_url}/v1/transfers", json={
        "reference": "po_bad", "amount": 100, "currency": "eur",
        "destination": {"account_holder_name": "J", "country": "DE", "currency": "eur",
                        "iban": "DE89370400440532013001"}})
    assert response.status_code == 400 and response.json()["error"]["param"] == "iban"
    assert await received(client, bank_url, "po_bad") == 0
    # as the adapter reads it
    refusal = BankSimulatorAdapter._refusal_or_unknown(response)
    assert isinstance(refusal, PayoutRefused)
    assert refusal.failure_code is FailureCode.INVALID_ACCOUNT_NUMBER


async def test_a_bank_that_is_not_there_is_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        async with httpx.AsyncClient(timeout=1.0) as c:
            with pytest.raises(PayoutRailUnavailable):
                await BankSimulatorAdapter(c, f"http://127.0.0.1:{port}").send(instruction())


async def test_control_plane_refuses_bad_settings(client, bank_url):
    assert (await client.post(f"{bank_url}/_bank/config",
                              json={"failure_rate": 3})).status_code == 400
    assert (await client.post(f"{bank_url}/_bank/faults",
                              json={"faults": ["meteor"]})).status_code == 400
    assert (await client.post(f"{bank_url}/_bank/clock",
                              json={"advance_s": -5})).status_code == 400
    assert (await client.get(f"{bank_url}/healthz")).json() == {"status": "ok"}


async def test_the_process_keeps_its_books_across_a_restart(tmp_path):
    state = tmp_path / "bank.json"
    order = instruction()
    with running_bank_process("--state", str(state)) as (url, _):
        async with httpx.AsyncClient(timeout=5.0) as c:
            first = await BankSimulatorAdapter(c, url).send(order)
    with running_bank_process("--state", str(state)) as (url, _):
        async with httpx.AsyncClient(timeout=5.0) as c:
            adapter = BankSimulatorAdapter(c, url)
            assert (await adapter.get(payout_id=order.payout_id)).rail_reference == \
                first.rail_reference
            assert (await adapter.send(order)).rail_reference == first.rail_reference
            assert (await c.get(f"{url}/_bank/stats")).json()["transfers"] == 1


@pytest.mark.parametrize("status, kind", [
    (400, PayoutRefused), (422, PayoutRefused),
    (401, PayoutRailUnavailable), (403, PayoutRailUnavailable), (429, PayoutRailUnavailable),
    (404, PayoutOutcomeUnknown), (500, PayoutOutcomeUnknown), (503, PayoutOutcomeUnknown)])
def test_only_a_judgement_on_the_transfer_is_a_refusal(status, kind):
    """A refusal fails the payout and gives the money back: a bad key, a missing permission
    or a rate limit must not, since they say nothing about the transfer."""
    response = httpx.Response(status, json={"error": {"type": "x", "message": "m"}})
    assert type(BankSimulatorAdapter._refusal_or_unknown(response)) is kind
