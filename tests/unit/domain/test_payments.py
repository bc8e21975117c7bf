"""The PaymentIntent state machine, driven through its command methods only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kassa.domain.errors import AmountError, IllegalTransition, InvalidRequest
from kassa.domain.money import MAX_AMOUNT, Money
from kassa.domain.payments import (
    CANCELABLE,
    REFUND_TRANSITIONS,
    REVERSALS,
    TRANSITIONS,
    PaymentIntent,
    Refund,
    RefundStatus,
    transition,
    validate_amount,
)
from kassa.domain.payments import PaymentStatus as S

NOW = 1_700_000_000
ERROR = {"type": "card_error", "code": "card_declined", "message": "Your card was declined."}
ACTION = {"type": "redirect_to_url", "redirect_to_url": {"url": "https://acs.test/3ds"}}


def make(status: S, *, amount: int = 1000, currency: str = "usd", **kw: Any) -> PaymentIntent:
    """A payment as it would be in ``status``, with the fields that state implies."""
    fields: dict[str, Any] = {"payment_method": "pm_card_visa"}
    if status in (S.REQUIRES_ACTION, S.PROCESSING, S.REQUIRES_CAPTURE, S.SUCCEEDED):
        fields.update(psp="simulator", psp_reference="sim_1", latest_charge="ch_1")
    if status is S.REQUIRES_CAPTURE:
        fields["amount_capturable"] = amount
    if status is S.SUCCEEDED:
        fields["amount_received"] = amount
    if status is S.REQUIRES_PAYMENT_METHOD:
        fields["payment_method"] = None
    fields.update(kw)
    return PaymentIntent(id="pi_1", merchant_id="acct_1", amount=Money(amount, currency),
                         status=status, capture_method="manual", created=NOW, **fields)


Command = Callable[[PaymentIntent], object]

# Every allowed (src, dst) with the command(s) that perform it.
ALLOWED: list[tuple[S, S, str, Command, dict[str, Any]]] = [
    (S.REQUIRES_PAYMENT_METHOD, S.REQUIRES_CONFIRMATION, "attach_payment_method",
     lambda p: p.attach_payment_method("pm_card_visa"), {}),
    (S.REQUIRES_PAYMENT_METHOD, S.PROCESSING, "start_authorization (card given with confirm)",
     lambda p: p.start_authorization("ch_2", "simulator"), {"payment_method": "pm_card_visa"}),
    (S.REQUIRES_PAYMENT_METHOD, S.CANCELED, "cancel",
     lambda p: p.cancel(reason=None, now=NOW), {}),
    (S.REQUIRES_CONFIRMATION, S.REQUIRES_CONFIRMATION, "attach_payment_method (replace)",
     lambda p: p.attach_payment_method("pm_card_mastercard"), {}),
    (S.REQUIRES_CONFIRMATION, S.PROCESSING, "start_authorization",
     lambda p: p.start_authorization("ch_2", "simulator"), {}),
    (S.REQUIRES_CONFIRMATION, S.CANCELED, "cancel",
     lambda p: p.cancel(reason="abandoned", now=NOW), {}),
    (S.REQUIRES_ACTION, S.SUCCEEDED, "authorization_succeeded(captured)",
     lambda p: p.authorization_succeeded(psp_reference="sim_2", captured=True), {}),
    (S.REQUIRES_ACTION, S.REQUIRES_CAPTURE, "authorization_succeeded(authorised)",
     lambda p: p.authorization_succeeded(psp_reference="sim_2", captured=False), {}),
    (S.REQUIRES_ACTION, S.REQUIRES_PAYMENT_METHOD, "authorization_failed",
     lambda p: p.authorization_failed(ERROR), {}),
    (S.REQUIRES_ACTION, S.PROCESSING, "start_void (of the open authentication)",
     lambda p: p.start_void("att_v"), {}),
    (S.PROCESSING, S.REQUIRES_ACTION, "authorization_requires_action",
     lambda p: p.authorization_requires_action(psp_reference="sim_2", next_action=ACTION), {}),
    (S.PROCESSING, S.REQUIRES_ACTION, "void_failed (the authentication stays open)",
     lambda p: p.void_failed(was=S.REQUIRES_ACTION), {}),
    (S.PROCESSING, S.REQUIRES_PAYMENT_METHOD, "authentication_expired",
     lambda p: p.authentication_expired(ERROR), {}),
    (S.PROCESSING, S.REQUIRES_CAPTURE, "void_failed (the hold stays)",
     lambda p: p.void_failed(was=S.REQUIRES_CAPTURE), {"amount_capturable": 1000}),
    (S.PROCESSING, S.REQUIRES_CAPTURE, "authorization_succeeded(authorised)",
     lambda p: p.authorization_succeeded(psp_reference="sim_2", captured=False), {}),
    (S.PROCESSING, S.REQUIRES_CAPTURE, "capture_failed",
     lambda p: p.capture_failed(), {"amount_capturable": 1000}),
    (S.PROCESSING, S.SUCCEEDED, "authorization_succeeded(captured)",
     lambda p: p.authorization_succeeded(psp_reference="sim_2", captured=True), {}),
    (S.PROCESSING, S.SUCCEEDED, "capture_succeeded",
     lambda p: p.capture_succeeded(600), {"amount_capturable": 1000}),
    (S.PROCESSING, S.REQUIRES_PAYMENT_METHOD, "authorization_failed",
     lambda p: p.authorization_failed(ERROR), {}),
    (S.PROCESSING, S.CANCELED, "void_succeeded",
     lambda p: p.void_succeeded(now=NOW), {"amount_capturable": 1000}),
    (S.REQUIRES_CAPTURE, S.PROCESSING, "start_capture",
     lambda p: p.start_capture("att_1", None), {}),
    (S.REQUIRES_CAPTURE, S.PROCESSING, "start_void",
     lambda p: p.start_void("att_1"), {}),
]


def test_every_allowed_transition_has_a_command():
    assert {(src, dst) for src, dst, *_ in ALLOWED} == set(TRANSITIONS)


@pytest.mark.parametrize(("src", "dst", "name", "command", "fields"), ALLOWED,
                         ids=[f"{s.value}->{d.value}:{n}" for s, d, n, _, _ in ALLOWED])
def test_allowed_transition_through_its_command(src, dst, name, command, fields):
    p = make(src, **fields)
    command(p)
    assert p.status is dst


def test_terminal_states_have_no_way_out():
    for src, _dst in TRANSITIONS:
        assert src not in (S.SUCCEEDED, S.CANCELED)


def test_only_a_rejected_capture_leaves_succeeded():
    """The scheme's rejection of a capture the PSP had confirmed (Adyen's CAPTURE_FAILED
    after CAPTURE) is the one way out of succeeded, by its own table and command."""
    assert REVERSALS == {(S.SUCCEEDED, S.REQUIRES_CAPTURE), (S.SUCCEEDED, S.CANCELED)}
    assert not REVERSALS & TRANSITIONS
    for dst in S:
        p = make(S.SUCCEEDED)
        with pytest.raises(IllegalTransition):
            transition(p, dst)
        assert p.status is S.SUCCEEDED


def test_a_reversed_capture_is_held_again_whole_or_canceled():
    p = make(S.SUCCEEDED, amount=1000, amount_received=600)
    p.capture_reversed(hold_ref="att_c", now=NOW)
    assert (p.status, p.amount_capturable, p.amount_received, p.hold_ref) == (
        S.REQUIRES_CAPTURE, 1000, 0, "att_c")
    p = make(S.SUCCEEDED, amount=1000)
    p.capture_reversed(hold_ref=None, now=NOW)
    assert (p.status, p.amount_capturable, p.amount_received, p.canceled_at,
            p.cancellation_reason, p.hold_ref) == (S.CANCELED, 0, 0, NOW, "automatic", None)


def test_a_refunded_capture_is_not_reversed_by_itself():
    p = make(S.SUCCEEDED, amount=1000, amount_refunded=100)
    with pytest.raises(IllegalTransition):
        p.capture_reversed(hold_ref="att_c", now=NOW)
    assert (p.status, p.amount_received) == (S.SUCCEEDED, 1000)
    with pytest.raises(IllegalTransition):
        make(S.REQUIRES_CAPTURE).capture_reversed(hold_ref="att_c", now=NOW)


def test_transition_function_refuses_what_the_table_lacks():
    for src in S:
        for dst in S:
            p = make(src)
            if (src, dst) in TRANSITIONS:
                transition(p, dst)
                assert p.status is dst
            else:
                with pytest.raises(IllegalTransition) as exc:
                    transition(p, dst)
                assert (exc.value.src, exc.value.dst) == (src.value, dst.value)
                assert p.status is src  # unchanged


# --------------------------------------------------------------------- illegal moves

ILLEGAL: list[tuple[S, str, Command]] = [
    (S.SUCCEEDED, "attach_payment_method", lambda p: p.attach_payment_method("pm_x")),
    (S.REQUIRES_CAPTURE, "attach_payment_method", lambda p: p.attach_payment_method("pm_x")),
    (S.PROCESSING, "attach_payment_method", lambda p: p.attach_payment_method("pm_x")),
    (S.SUCCEEDED, "start_authorization", lambda p: p.start_authorization("ch_2", "sim")),
    (S.CANCELED, "start_authorization", lambda p: p.start_authorization("ch_2", "sim")),
    (S.PROCESSING, "start_authorization", lambda p: p.start_authorization("ch_2", "sim")),
    # an authorised payment is not confirmed again (that would authorise the card twice)
    (S.REQUIRES_CAPTURE, "start_authorization", lambda p: p.start_authorization("ch_2", "sim")),
    # re-confirming after 3DS continues the open attempt; it never starts a new one
    (S.REQUIRES_ACTION, "start_authorization", lambda p: p.start_authorization("ch_2", "sim")),
    (S.REQUIRES_CONFIRMATION, "authorization_succeeded",
     lambda p: p.authorization_succeeded(psp_reference="x", captured=True)),
    (S.SUCCEEDED, "authorization_succeeded",
     lambda p: p.authorization_succeeded(psp_reference="x", captured=False)),
    (S.CANCELED, "authorization_failed", lambda p: p.authorization_failed(ERROR)),
    (S.SUCCEEDED, "authorization_requires_action",
     lambda p: p.authorization_requires_action(psp_reference="x", next_action=ACTION)),
    (S.REQUIRES_CONFIRMATION, "start_capture", lambda p: p.start_capture("att", None)),
    (S.SUCCEEDED, "start_capture", lambda p: p.start_capture("att", None)),
    (S.PROCESSING, "start_capture", lambda p: p.start_capture("att", None)),
    (S.CANCELED, "start_capture", lambda p: p.start_capture("att", 1)),
    (S.REQUIRES_CAPTURE, "capture_succeeded", lambda p: p.capture_succeeded(1)),
    (S.SUCCEEDED, "capture_failed", lambda p: p.capture_failed()),
    (S.SUCCEEDED, "void_succeeded", lambda p: p.void_succeeded(now=NOW)),
    (S.SUCCEEDED, "start_void", lambda p: p.start_void("att")),
    (S.CANCELED, "start_void", lambda p: p.start_void("att")),
]


@pytest.mark.parametrize(("src", "name", "command"), ILLEGAL,
                         ids=[f"{s.value}:{n}" for s, n, _ in ILLEGAL])
def test_illegal_command_raises_and_changes_nothing(src, name, command):
    p = make(src)
    before = replace(p, metadata=dict(p.metadata))
    with pytest.raises(IllegalTransition):
        command(p)
    assert p == before  # refused commands leave the aggregate untouched


def test_illegal_transition_message_is_stripe_shaped():
    p = make(S.SUCCEEDED)
    with pytest.raises(IllegalTransition) as exc:
        p.start_capture("att", None)
    assert exc.value.message == (
        "You cannot capture this PaymentIntent because it has a status of succeeded.")
    assert exc.value.code == "payment_intent_unexpected_state"


def test_confirm_without_payment_method():
    p = make(S.REQUIRES_PAYMENT_METHOD)
    with pytest.raises(InvalidRequest) as exc:
        p.start_authorization("ch_1", "simulator")
    assert exc.value.param == "payment_method"
    assert p.status is S.REQUIRES_PAYMENT_METHOD


# --------------------------------------------------------------------- authorisation


def test_start_authorization_records_the_attempt_and_clears_the_last_error():
    p = make(S.REQUIRES_CONFIRMATION, last_payment_error=ERROR, next_action=ACTION)
    p.start_authorization("ch_9", "simulator")
    assert (p.pending_attempt_id, p.latest_charge, p.psp) == ("ch_9", "ch_9", "simulator")
    assert p.last_payment_error is None and p.next_action is None


def test_automatic_capture_success_sets_received():
    p = make(S.PROCESSING)
    p.authorization_succeeded(psp_reference="sim_9", captured=True)
    assert (p.amount_received, p.amount_capturable) == (1000, 0)
    assert p.psp_reference == "sim_9" and p.pending_attempt_id is None


def test_manual_authorisation_makes_the_amount_capturable():
    p = make(S.PROCESSING)
    p.authorization_succeeded(psp_reference="sim_9", captured=False)
    assert (p.status, p.amount_capturable, p.amount_received) == (S.REQUIRES_CAPTURE, 1000, 0)


def test_decline_drops_the_payment_method_and_records_the_error():
    p = make(S.PROCESSING, pending_attempt_id="ch_1", next_action=ACTION)
    p.authorization_failed(ERROR)
    assert p.status is S.REQUIRES_PAYMENT_METHOD
    assert p.payment_method is None and p.last_payment_error == ERROR
    assert p.pending_attempt_id is None and p.next_action is None


def test_requires_action_keeps_the_attempt_open():
    p = make(S.PROCESSING, pending_attempt_id="ch_1")
    p.authorization_requires_action(psp_reference="sim_1", next_action=ACTION)
    assert p.pending_attempt_id == "ch_1" and p.next_action == ACTION


# --------------------------------------------------------------------- capture


def test_full_capture_by_default():
    p = make(S.REQUIRES_CAPTURE)
    assert p.start_capture("att_1", None) == 1000
    assert p.pending_attempt_id == "att_1"
    p.capture_succeeded(1000)
    assert (p.status, p.amount_received, p.amount_capturable) == (S.SUCCEEDED, 1000, 0)


def test_partial_capture():
    p = make(S.REQUIRES_CAPTURE)
    assert p.start_capture("att_1", 400) == 400
    p.capture_succeeded(400)
    assert (p.status, p.amount_received, p.amount_capturable) == (S.SUCCEEDED, 400, 0)


@pytest.mark.parametrize("amount", [1001, MAX_AMOUNT])
def test_capture_above_capturable_is_an_amount_error(amount):
    p = make(S.REQUIRES_CAPTURE)
    with pytest.raises(AmountError) as exc:
        p.start_capture("att_1", amount)
    assert exc.value.param == "amount_to_capture"
    assert p.status is S.REQUIRES_CAPTURE and p.pending_attempt_id is None


@pytest.mark.parametrize("amount", [0, -1, MAX_AMOUNT + 1])
def test_capture_amount_out_of_range(amount):
    p = make(S.REQUIRES_CAPTURE)
    with pytest.raises(AmountError):
        p.start_capture("att_1", amount)
    assert p.status is S.REQUIRES_CAPTURE


def test_capture_failure_keeps_the_hold():
    p = make(S.REQUIRES_CAPTURE)
    p.start_capture("att_1", 300)
    p.capture_failed()
    assert (p.status, p.amount_capturable, p.pending_attempt_id) == (S.REQUIRES_CAPTURE, 1000,
                                                                     None)


# --------------------------------------------------------------------- cancel


@pytest.mark.parametrize("src", sorted(CANCELABLE - {S.REQUIRES_CAPTURE, S.REQUIRES_ACTION}))
def test_cancel_without_held_funds_is_immediate(src):
    p = make(src, next_action=ACTION if src is S.REQUIRES_ACTION else None)
    assert p.cancel(reason="duplicate", now=NOW) is False
    assert p.status is S.CANCELED
    assert (p.canceled_at, p.cancellation_reason, p.next_action) == (NOW, "duplicate", None)


def test_cancel_during_authentication_needs_a_void():
    """The customer could still complete 3-D Secure at the PSP: void it there first."""
    p = make(S.REQUIRES_ACTION, next_action=ACTION, pending_attempt_id="ch_1",
             latest_charge="ch_1")
    assert p.cancel(reason="abandoned", now=NOW) is True
    assert p.status is S.REQUIRES_ACTION
    p.start_void("att_v")
    assert (p.status, p.pending_attempt_id) == (S.PROCESSING, "att_v")
    p.void_failed(was=S.REQUIRES_ACTION)  # the customer completed first
    assert (p.status, p.pending_attempt_id) == (S.REQUIRES_ACTION, "ch_1")


def test_cancel_with_held_funds_needs_a_void():
    p = make(S.REQUIRES_CAPTURE)
    assert p.cancel(reason="fraudulent", now=NOW) is True
    assert p.status is S.REQUIRES_CAPTURE and p.canceled_at is None
    p.start_void("att_v")
    assert p.status is S.PROCESSING
    p.void_succeeded(now=NOW + 1)
    assert (p.status, p.amount_capturable, p.canceled_at) == (S.CANCELED, 0, NOW + 1)
    assert p.cancellation_reason == "fraudulent"


@pytest.mark.parametrize("src", [S.PROCESSING, S.SUCCEEDED, S.CANCELED])
def test_cancel_from_a_non_cancelable_state(src):
    p = make(src)
    with pytest.raises(IllegalTransition):
        p.cancel(reason=None, now=NOW)
    assert p.status is src


def test_cancel_with_an_unknown_reason():
    p = make(S.REQUIRES_CONFIRMATION)
    with pytest.raises(InvalidRequest) as exc:
        p.cancel(reason="bored", now=NOW)
    assert exc.value.param == "cancellation_reason"
    assert p.status is S.REQUIRES_CONFIRMATION


def test_every_state_either_cancels_or_raises():
    for src in S:
        p = make(src)
        if src in CANCELABLE:
            p.cancel(reason=None, now=NOW)
        else:
            with pytest.raises(IllegalTransition):
                p.cancel(reason=None, now=NOW)


# --------------------------------------------------------------------- refunds


def test_several_partial_refunds_up_to_the_captured_amount():
    p = make(S.SUCCEEDED, amount_received=1000)
    assert p.reserve_refund(300) == 300
    assert p.reserve_refund(300) == 300
    with pytest.raises(AmountError) as exc:
        p.reserve_refund(401)
    assert exc.value.param == "amount"
    assert p.amount_refunded == 600
    assert p.reserve_refund(None) == 400  # the rest
    assert p.amount_refunded == 1000
    with pytest.raises(InvalidRequest) as exc2:
        p.reserve_refund(1)
    assert exc2.value.code == "charge_already_refunded"
    with pytest.raises(InvalidRequest):
        p.reserve_refund(None)
    assert p.amount_refunded == 1000


def test_refund_counts_against_received_not_the_amount():
    p = make(S.SUCCEEDED, amount_received=400)  # partial capture of 1000
    with pytest.raises(AmountError):
        p.reserve_refund(401)
    assert p.reserve_refund(None) == 400


@pytest.mark.parametrize("amount", [0, -5])
def test_refund_amount_out_of_range(amount):
    p = make(S.SUCCEEDED)
    with pytest.raises(AmountError):
        p.reserve_refund(amount)
    assert p.amount_refunded == 0


@pytest.mark.parametrize("src", [s for s in S if s is not S.SUCCEEDED])
def test_only_succeeded_payments_are_refundable(src):
    p = make(src)
    with pytest.raises(InvalidRequest) as exc:
        p.reserve_refund(None)
    assert exc.value.param == "payment_intent"
    assert p.amount_refunded == 0


def test_release_refund_makes_the_amount_refundable_again():
    p = make(S.SUCCEEDED)
    p.reserve_refund(700)
    p.release_refund(700)
    assert p.amount_refunded == 0
    assert p.reserve_refund(None) == 1000


@given(received=st.integers(1, 10**6),
       requests=st.lists(st.one_of(st.none(), st.integers(-5, 10**6)), max_size=12))
def test_refund_reservations_never_exceed_received(received, requests):
    p = make(S.SUCCEEDED, amount=10**6, amount_received=received)
    reserved = 0
    for amount in requests:
        try:
            reserved += p.reserve_refund(amount)
        except InvalidRequest:  # AmountError included
            pass
        assert p.amount_refunded == reserved <= received


def test_refund_state_machine():
    r = Refund(id="re_1", merchant_id="acct_1", payment_intent_id="pi_1",
               amount=Money(100, "usd"), status=RefundStatus.PENDING, created=NOW)
    r.move(RefundStatus.SUCCEEDED)
    r.move(RefundStatus.FAILED)  # a PSP may fail a refund later
    with pytest.raises(IllegalTransition):
        r.move(RefundStatus.SUCCEEDED)
    assert (RefundStatus.FAILED, RefundStatus.PENDING) not in REFUND_TRANSITIONS


# --------------------------------------------------------------------- amounts


@pytest.mark.parametrize("amount", [1, 2, MAX_AMOUNT])
def test_valid_amounts(amount):
    validate_amount(amount)


@pytest.mark.parametrize(("amount", "error", "code"), [
    (0, AmountError, "amount_too_small"),
    (-1, AmountError, "amount_too_small"),
    (MAX_AMOUNT + 1, AmountError, "amount_too_large"),
    (True, InvalidRequest, "parameter_invalid"),
    (1.0, InvalidRequest, "parameter_invalid"),
    ("100", InvalidRequest, "parameter_invalid"),
])
def test_invalid_amounts(amount, error, code):
    with pytest.raises(error) as exc:
        validate_amount(amount)
    assert type(exc.value) is error and exc.value.code == code
