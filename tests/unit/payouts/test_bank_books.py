"""The simulated bank's books on a clock the test holds: each transfer is received once per
reference, and its fate (paid, failed, paid then returned) follows the clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from kassa.domain.errors import InvalidRequest
from kassa.payouts.bank_simulator.bank import (
    Bank,
    BankConfig,
    Conflict,
    IdempotencyConflict,
    NotFound,
)

T0 = 1_800_000_000.0
DAY = 86_400.0


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


def body(reference: str = "po_1", *, amount: int = 5000, currency: str = "eur",
         iban: str = "DE89370400440532013000", **destination: str) -> dict[str, object]:
    return {"reference": reference, "amount": amount, "currency": currency,
            "destination": {"account_holder_name": "Jenny Rosen", "country": iban[:2],
                            "currency": currency, "iban": iban, **destination}}


def us_body(account_number: str, reference: str = "po_us") -> dict[str, object]:
    return {"reference": reference, "amount": 1000, "currency": "usd",
            "destination": {"account_holder_name": "Jenny Rosen", "country": "US",
                            "currency": "usd", "routing_number": "110000000",
                            "account_number": account_number}}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def bank(clock: Clock) -> Bank:
    return Bank(BankConfig(paid_after_s=DAY, fail_after_s=60, return_after_s=3 * DAY),
                clock=clock)


def test_in_transit_then_paid(bank: Bank, clock: Clock):
    transfer, replayed = bank.receive(body())
    assert not replayed
    view = transfer.view(bank.now())
    assert (view["status"], view["amount"], view["currency"]) == ("in_transit", 5000, "eur")
    assert view["destination"]["last4"] == "3000" and "iban" not in view["destination"]
    clock.t += DAY
    assert transfer.view(bank.now())["status"] == "paid"
    assert transfer.view(bank.now())["arrival_date"] == "2027-01-16"


def test_same_reference_is_one_transfer(bank: Bank):
    first, _ = bank.receive(body())
    again, replayed = bank.receive(body())
    assert replayed and again is first and len(bank.transfers) == 1
    with pytest.raises(IdempotencyConflict):
        bank.receive(body(amount=5001))


def test_failing_and_returning_accounts(bank: Bank, clock: Clock):
    closed, _ = bank.receive(us_body("000111111113", "po_closed"))
    returned, _ = bank.receive(us_body("000555555556", "po_returned"))
    clock.t += 60
    assert closed.view(bank.now())["status"] == "failed"
    assert closed.view(bank.now())["failure_code"] == "account_closed"
    assert not closed.view(bank.now())["returned"]
    clock.t += DAY
    assert returned.view(bank.now())["status"] == "paid"
    assert returned.view(bank.now())["failure_code"] is None
    clock.t += 3 * DAY
    view = returned.view(bank.now())
    assert (view["status"], view["failure_code"], view["returned"]) == (
        "failed", "account_closed", True)
    assert view["failure_message"] == "The bank account has been closed."


def test_a_destination_in_another_currency_fails(bank: Bank, clock: Clock):
    payload = body()
    payload["destination"]["currency"] = "gbp"  # type: ignore[index]
    transfer, _ = bank.receive(payload)
    clock.t += 60
    assert transfer.view(bank.now())["failure_code"] == "invalid_currency"


def test_rates_draw_reproducibly(clock: Clock):
    config = BankConfig(failure_rate=0.5, failure_code="declined", seed=7, fail_after_s=0)
    codes = []
    for _ in range(2):
        bank = Bank(config, clock=clock)
        codes.append([bank.receive(body(f"po_{i}"))[0].failure_code for i in range(20)])
    assert codes[0] == codes[1] and set(codes[0]) == {None, "declined"}


@pytest.mark.parametrize(("change", "param"), [
    ({"amount": 0}, "amount"), ({"amount": "5"}, "amount"), ({"currency": "xyz"}, "currency"),
    ({"reference": ""}, "reference"), ({"destination": "DE89"}, "destination"),
    ({"destination": {"account_holder_name": "J", "country": "DE", "currency": "eur",
                      "iban": "DE89370400440532013001"}}, "iban"),
])
def test_invalid_transfers_store_nothing(bank: Bank, change, param):
    with pytest.raises(InvalidRequest) as info:
        bank.receive({**body(), **change})
    assert info.value.param == param and not bank.transfers


def test_fail_now_from_the_control_plane(bank: Bank, clock: Clock):
    transit, _ = bank.receive(body("po_a"))
    bank.fail(transit.id, "no_account")
    assert transit.view(bank.now())["status"] == "failed"
    assert not transit.view(bank.now())["returned"]
    with pytest.raises(Conflict):
        bank.fail(transit.id, "no_account")
    paid, _ = bank.receive(body("po_b"))
    clock.t += DAY
    assert bank.fail(paid.id, "account_frozen").view(bank.now())["returned"]
    with pytest.raises(InvalidRequest):
        bank.fail(paid.id, "made_up")
    with pytest.raises(NotFound):
        bank.fail("bt_missing", "no_account")


def test_clock_moves_only_forward(bank: Bank):
    bank.advance(3 * DAY)
    assert bank.now() == T0 + 3 * DAY
    with pytest.raises(InvalidRequest):
        bank.advance(-1)


@pytest.mark.parametrize("change", [
    {"paid_after_s": -1}, {"failure_rate": 2}, {"failure_code": "nope"},
    {"failing_accounts": {"1234": "nope"}}, {"seed": "x"}, {"colour": "blue"},
])
def test_bad_config_is_refused(change):
    with pytest.raises(InvalidRequest):
        BankConfig().updated(change)


def test_books_survive_a_restart(tmp_path: Path, clock: Clock):
    path = tmp_path / "bank.json"
    bank = Bank(BankConfig(paid_after_s=DAY), state_path=path, clock=clock)
    first, _ = bank.receive(body())
    bank.advance(DAY)
    reopened = Bank(BankConfig(paid_after_s=DAY), state_path=path, clock=clock)
    again, replayed = reopened.receive(body())
    assert replayed and again.id == first.id
    assert reopened.find("po_1").view(reopened.now())["status"] == "paid"
