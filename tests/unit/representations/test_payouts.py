"""Payout and bank account objects have the shape stripe-python declares, show only last4,
and follow the payout through its moves."""

from __future__ import annotations

import json

import pytest

from kassa.domain.bank_accounts import bank_account
from kassa.domain.money import Money
from kassa.domain.payouts import (
    FailureCode,
    IllegalPayoutTransition,
    Payout,
    PayoutStatus,
    estimated_arrival,
)
from kassa.representations.payouts import bank_account as bank_account_object
from kassa.representations.payouts import payout
from tests.support.stripe_schema import assert_stripe_shape

CREATED = 1_800_000_123


def new_payout(**kwargs) -> Payout:
    return Payout(id="po_1", merchant_id="acct_1", amount=Money(5000, "eur"),
                  status=PayoutStatus.PENDING, created=CREATED,
                  arrival_date=estimated_arrival(CREATED), **kwargs)


def test_payout_object_is_stripe_shaped():
    p = new_payout(description="weekly", metadata={"k": "v"}, destination="ba_1",
                   balance_transaction="txn_1")
    obj = payout(p)
    assert_stripe_shape(obj, "Payout")
    assert (obj["status"], obj["amount"], obj["currency"], obj["reconciliation_status"]) == (
        "pending", 5000, "eur", "not_applicable")
    assert obj["arrival_date"] == 1_800_000_123 // 86_400 * 86_400 + 2 * 86_400


def test_a_payout_through_its_moves():
    p = new_payout(automatic=True, period_key="2027-01-15")
    transit = p.moved(p.move_to(PayoutStatus.IN_TRANSIT), trace_id="bt_9")
    assert (transit.status, transit.version, transit.trace_id) == (
        PayoutStatus.IN_TRANSIT, 1, "bt_9")
    assert payout(transit)["reconciliation_status"] == "in_progress"
    paid = transit.moved(transit.move_to(PayoutStatus.PAID))
    assert payout(paid)["reconciliation_status"] == "completed"
    returned = paid.moved(paid.move_to(PayoutStatus.FAILED, failure=FailureCode.NO_ACCOUNT),
                          failure_balance_transaction="txn_2")
    obj = payout(returned)
    assert_stripe_shape(obj, "Payout")
    assert (obj["status"], obj["failure_code"], obj["failure_balance_transaction"]) == (
        "failed", "no_account", "txn_2")
    assert obj["failure_message"]
    with pytest.raises(IllegalPayoutTransition):  # a move computed for another status
        paid.moved(p.move_to(PayoutStatus.CANCELED))


def test_bank_account_object_shows_last4_only():
    account = bank_account(account_holder_name="Jenny Rosen", country="US", currency="usd",
                           routing_number="110000000", account_number="000123456789")
    obj = bank_account_object("ba_1", account)
    assert_stripe_shape(obj, "BankAccount")
    assert obj["last4"] == "6789" and "000123456789" not in json.dumps(obj)
