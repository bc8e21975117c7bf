"""Dispute domain: transitions, which money moves on each change, events, evidence rules,
and the posting rules for chargebacks and their reversal."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kassa import representations
from kassa.domain import disputes, ledger
from kassa.domain.disputes import (
    CHARGEBACK,
    DISPUTE_TRANSITIONS,
    Dispute,
    DisputeStatus,
    dispute_fee,
    open_from_psp,
)
from kassa.domain.errors import AmountError, IllegalTransition, InvalidRequest
from kassa.domain.ledger import REVENUE_FEES, Layer, TxKind
from kassa.domain.money import MAX_AMOUNT, Money

D = DisputeStatus
M = "acct_1"
PSP = "simulator"


def new(status: DisputeStatus = D.NEEDS_RESPONSE, amount: int = 5000,
        received: int = 5000) -> tuple[Dispute, disputes.DisputeChange]:
    return open_from_psp(
        dispute_id="dp_1", merchant_id=M, payment_intent_id="pi_1", charge="ch_1",
        amount_received=Money(received, "usd"), psp=PSP, psp_dispute_id="sdp_1",
        amount=Money(amount, "usd"), reason="fraudulent", status=status,
        evidence_due_by=1_000, created=100)


def test_fee_is_fifteen_units_of_the_currency():
    assert dispute_fee("usd") == Money(1500, "usd")
    assert dispute_fee("jpy") == Money(15, "jpy")
    assert dispute_fee("kwd") == Money(15_000, "kwd")


def test_a_new_chargeback_withdraws_funds():
    d, change = new()
    assert (d.status, d.fee, d.funds_withdrawn) == (D.NEEDS_RESPONSE, Money(1500, "usd"), True)
    assert (change.previous, change.withdraw, change.reinstate) == (None, True, False)
    assert change.event_types == ["charge.dispute.created", "charge.dispute.funds_withdrawn"]


def test_a_new_inquiry_moves_no_money():
    d, change = new(D.WARNING_NEEDS_RESPONSE)
    assert not d.funds_withdrawn and not change.withdraw
    assert change.event_types == ["charge.dispute.created"]


@pytest.mark.parametrize(("status", "withdraw", "reinstate", "events"), [
    (D.WON, True, True, ["charge.dispute.created", "charge.dispute.funds_withdrawn",
                         "charge.dispute.closed", "charge.dispute.funds_reinstated"]),
    (D.LOST, True, False, ["charge.dispute.created", "charge.dispute.funds_withdrawn",
                           "charge.dispute.closed"]),
    (D.WARNING_CLOSED, False, False, ["charge.dispute.created", "charge.dispute.closed"]),
])
def test_first_seen_already_decided(status, withdraw, reinstate, events):
    """A `closed` event that overtook its `created` still moves all the money once."""
    _, change = new(status)
    assert (change.withdraw, change.reinstate, change.event_types) == (withdraw, reinstate,
                                                                       events)


def test_won_reinstates_once_and_is_final():
    d, _ = new()
    change = d.psp_status(D.UNDER_REVIEW, evidence_due_by=None)
    assert change is not None and not change.withdraw and not change.reinstate
    assert change.event_types == ["charge.dispute.updated"]
    change = d.psp_status(D.WON, evidence_due_by=None)
    assert change is not None and change.reinstate and not change.withdraw
    assert change.event_types == ["charge.dispute.closed", "charge.dispute.funds_reinstated"]
    assert d.psp_status(D.WON, evidence_due_by=None) is None  # a repeat is no change
    for later in (D.LOST, D.UNDER_REVIEW, D.NEEDS_RESPONSE):
        with pytest.raises(IllegalTransition):
            d.psp_status(later, evidence_due_by=None)
    assert d.status is D.WON


def test_escalated_inquiry_withdraws_when_it_becomes_a_chargeback():
    d, _ = new(D.WARNING_NEEDS_RESPONSE)
    change = d.psp_status(D.NEEDS_RESPONSE, evidence_due_by=2_000)
    assert change is not None and change.withdraw and d.evidence_due_by == 2_000
    change = d.psp_status(D.LOST, evidence_due_by=None)
    assert change is not None and not change.withdraw


def test_transition_table_only_moves_forward():
    order = [D.WARNING_NEEDS_RESPONSE, D.WARNING_UNDER_REVIEW, D.NEEDS_RESPONSE,
             D.UNDER_REVIEW]
    for src, dst in DISPUTE_TRANSITIONS:
        assert src not in disputes.CLOSED
        if dst in order:
            assert order.index(dst) > order.index(src)


@given(path=st.lists(st.sampled_from(list(D)), max_size=8), start=st.sampled_from(list(D)))
def test_money_moves_at_most_once_each_way_whatever_the_order(path, start):
    """Any sequence of PSP snapshots: the chargeback is posted at most once, its reversal
    at most once and only after it, and what was posted matches the final status."""
    d, change = new(start)
    withdrawn, reinstated = int(change.withdraw), int(change.reinstate)
    for status in path:
        try:
            change = d.psp_status(status, evidence_due_by=None)
        except IllegalTransition:
            continue
        if change is not None:
            withdrawn += change.withdraw
            reinstated += change.reinstate
            assert withdrawn >= reinstated
    assert withdrawn == int(d.status in CHARGEBACK)
    assert reinstated == int(d.status is D.WON)


def test_disputed_amount_must_be_within_the_capture():
    with pytest.raises(AmountError):
        new(amount=6000, received=5000)
    with pytest.raises(AmountError):
        open_from_psp(dispute_id="dp", merchant_id=M, payment_intent_id="pi", charge="ch",
                      amount_received=Money(5000, "usd"), psp=PSP, psp_dispute_id="x",
                      amount=Money(100, "eur"), reason="general", status=D.NEEDS_RESPONSE,
                      evidence_due_by=None, created=0)


@pytest.mark.parametrize(("disputable", "withdrawn", "bounded"), [
    (5000, 5000, False),  # nothing refunded
    (9000, 5000, False),  # a partial dispute of a larger charge takes what is disputed
    (3000, 3000, True),  # 20.00 refunded before the chargeback: it takes the 30.00 left
    (0, 0, True),  # fully refunded: no funds, only the fee
])
def test_a_chargeback_withdraws_at_most_what_was_captured_and_not_refunded(
        disputable, withdrawn, bounded):
    d, change = new(amount=5000, received=9000)
    assert change.withdraw and d.amount_withdrawn is None  # fixed when it is posted
    assert d.record_withdrawal(Money(disputable, "usd")) == Money(withdrawn, "usd")
    assert d.amount_withdrawn == Money(withdrawn, "usd") and d.amount == Money(5000, "usd")
    assert d.withdrawal_bounded is bounded
    note = d.withdrawal_note()
    assert (note is not None) is bounded
    if note is not None:
        assert f"withdrew {withdrawn} of the disputed 5000 usd" in note


def test_withdrawal_in_another_currency_is_refused():
    d, _ = new()
    with pytest.raises(AmountError):
        d.record_withdrawal(Money(5000, "eur"))
    assert d.amount_withdrawn is None


@given(amount=st.integers(1, MAX_AMOUNT), received=st.integers(1, MAX_AMOUNT),
       refunded=st.integers(0, MAX_AMOUNT))
def test_withdrawal_never_exceeds_the_dispute_or_what_the_payment_holds(
        amount, received, refunded):
    refunded = min(refunded, received)
    amount = min(amount, received)
    d, _ = new(amount=amount, received=received)
    got = d.record_withdrawal(Money(received - refunded, "usd")).minor
    assert 0 <= got <= amount and got <= received - refunded
    assert got == min(amount, received - refunded)  # and no less than both allow


def test_unknown_reason_becomes_general():
    d, _ = open_from_psp(dispute_id="dp", merchant_id=M, payment_intent_id="pi", charge="ch",
                         amount_received=Money(5000, "usd"), psp=PSP, psp_dispute_id="x",
                         amount=Money(100, "usd"), reason="made_up", status=D.NEEDS_RESPONSE,
                         evidence_due_by=None, created=0)
    assert d.reason == "general"


def test_evidence_merges_then_submission_is_final():
    d, _ = new()
    assert d.update_evidence({"customer_name": "Ada", "billing_address": "x"}, submit=False,
                             now=10) is None
    assert d.update_evidence({"billing_address": ""}, submit=False, now=10) is None  # unset
    assert d.evidence == {"customer_name": "Ada"} and d.has_evidence
    change = d.update_evidence({"uncategorized_text": "receipt"}, submit=True, now=10)
    assert change is not None and (d.status, d.submission_count) == (D.UNDER_REVIEW, 1)
    assert change.event_types == ["charge.dispute.updated"]
    with pytest.raises(IllegalTransition):
        d.update_evidence({"customer_name": "B"}, submit=False, now=10)


def test_inquiry_evidence_moves_to_warning_under_review():
    d, _ = new(D.WARNING_NEEDS_RESPONSE)
    d.update_evidence({"uncategorized_text": "hello"}, submit=True, now=10)
    assert d.status is D.WARNING_UNDER_REVIEW


@pytest.mark.parametrize(("evidence", "message"), [
    ({"receipt": "file_1"}, "File evidence"),
    ({"favourite_colour": "blue"}, "unknown parameter"),
    ({"uncategorized_text": "x" * 150_001}, "at most"),
])
def test_bad_evidence_is_refused_and_changes_nothing(evidence, message):
    d, _ = new()
    with pytest.raises(InvalidRequest, match=message):
        d.update_evidence(evidence, submit=True, now=10)
    assert (d.evidence, d.status) == ({}, D.NEEDS_RESPONSE)


def test_late_submission_is_refused():
    d, _ = new()
    with pytest.raises(InvalidRequest) as caught:
        d.update_evidence({"uncategorized_text": "late"}, submit=True, now=1_001)
    assert caught.value.code == "dispute_evidence_past_due"
    view = representations.dispute(d, now=1_001, refundable=0, balance_transactions=[])
    assert view["evidence_details"]["past_due"] is True


def test_accept_concedes_and_withdraws_an_inquiry():
    d, _ = new(D.WARNING_NEEDS_RESPONSE)
    change = d.accept()
    assert d.status is D.LOST and change.withdraw
    with pytest.raises(IllegalTransition):
        d.accept()


def test_view_is_stripe_shaped():
    d, _ = new(D.WARNING_NEEDS_RESPONSE)
    d.evidence = {"customer_name": "Ada"}
    v = representations.dispute(d, now=50, refundable=5000, balance_transactions=[])
    assert v["object"] == "dispute" and v["status"] == "warning_needs_response"
    assert v["evidence"]["customer_name"] == "Ada" and v["evidence"]["receipt"] is None
    assert v["is_charge_refundable"] is True
    assert v["evidence_details"] == {"due_by": 1_000, "has_evidence": True,
                                     "past_due": False, "submission_count": 0,
                                     "enhanced_eligibility": {},
                                     "submission_method": "not_submitted"}
    assert representations.dispute(d, now=50, refundable=0,
                                   balance_transactions=[])["is_charge_refundable"] is False


# ------------------------------------------------------------------ posting rules


def by_account(posting: ledger.Posting) -> dict[tuple[str, Layer], int]:
    out: dict[tuple[str, Layer], int] = defaultdict(int)
    for e in posting.entries:
        out[(e.account, e.layer)] += e.amount.minor
    return dict(out)


def test_chargeback_posting_and_its_exact_reversal():
    amount, fee = Money(5000, "usd"), Money(1500, "usd")
    p = ledger.dispute(merchant_id=M, psp=PSP, amount=amount, fee=fee)
    r = ledger.dispute_reversal(merchant_id=M, psp=PSP, amount=amount, fee=fee)
    assert (p.kind, r.kind) == (TxKind.DISPUTE, TxKind.DISPUTE_REVERSAL)
    assert by_account(p) == {(ledger.merchant_available(M), Layer.POSTED): 6500,
                             (ledger.psp_receivable(PSP), Layer.POSTED): -5000,
                             (REVENUE_FEES, Layer.POSTED): -1500}
    assert {k: -v for k, v in by_account(r).items()} == by_account(p)


@given(amount=st.integers(1, MAX_AMOUNT), currency=st.sampled_from(["usd", "jpy", "kwd"]),
       zero_fee=st.booleans())
def test_dispute_postings_balance_for_any_amount(amount, currency, zero_fee):
    fee = Money(0, currency) if zero_fee else dispute_fee(currency)
    for p in (ledger.dispute(merchant_id=M, psp=PSP, amount=Money(amount, currency), fee=fee),
              ledger.dispute_reversal(merchant_id=M, psp=PSP, amount=Money(amount, currency),
                                      fee=fee)):
        assert sum(e.amount.minor for e in p.entries) == 0
        assert all(e.amount.minor != 0 for e in p.entries) and len(p.entries) >= 2
