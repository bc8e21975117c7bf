"""Stripe's rules for the optional PaymentIntent fields, and what an update may change in
which status (pure: objects built and asserted)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kassa.domain import intent_fields as f
from kassa.domain.errors import IllegalTransition, InvalidRequest
from kassa.domain.money import Money
from kassa.domain.payments import PaymentStatus as S
from kassa.domain.payments import Refund, RefundStatus
from kassa.representations import refund as render_refund
from tests.unit.domain.test_payments import make


@pytest.mark.parametrize("value", ["KASSA", "A", "SHOP 7", "X" * 22, "a-b.c,d"])
def test_descriptors_stripe_accepts(value: str) -> None:
    assert f.statement_descriptor(value, param="statement_descriptor") == value


@pytest.mark.parametrize(("value", "why"), [
    ("X" * 23, "1 to 22"), ("", "1 to 22"), ("1234", "one letter"), ("SHOP<1>", "cannot"),
    ("SHOP*", "cannot"), ('SAY "HI"', "cannot"), ("CAFÉ", "Latin"), ("TAB\tX", "Latin"),
])
def test_descriptors_stripe_refuses(value: str, why: str) -> None:
    with pytest.raises(InvalidRequest, match=why) as exc:
        f.statement_descriptor(value, param="statement_descriptor_suffix")
    assert exc.value.param == "statement_descriptor_suffix"


def test_receipt_email_and_choices() -> None:
    assert f.receipt_email("a@b.co") == "a@b.co"
    for bad in ("a@b", "no at", "a@@b.co", "x" * 800 + "@b.co"):
        with pytest.raises(InvalidRequest) as exc:
            f.receipt_email(bad)
        assert exc.value.code == "email_invalid"
    with pytest.raises(InvalidRequest):
        f.choice("later", f.SETUP_FUTURE_USAGES, param="setup_future_usage")


@pytest.mark.parametrize(("capture_method", "card", "automatic"), [
    ("automatic", None, True), ("automatic_async", None, True), ("manual", None, False),
    ("automatic", "manual", False), ("automatic_async", "manual", False),
])
def test_card_options_override_the_capture_method(capture_method, card, automatic) -> None:
    options = {"card": {"capture_method": card}} if card else None
    p = make(S.REQUIRES_CONFIRMATION, payment_method_options=options)
    p.capture_method = capture_method
    assert p.captures_on_authorization is automatic


@pytest.mark.parametrize("status", [S.REQUIRES_PAYMENT_METHOD, S.REQUIRES_CONFIRMATION])
def test_the_terms_change_before_confirmation(status: S) -> None:
    p = make(status, metadata={"a": "1", "b": "2"})
    f.update(p, {"amount": 700, "currency": "EUR", "metadata": {"a": None, "c": "3"},
                 "statement_descriptor_suffix": "NEW", "capture_method": "automatic_async",
                 "payment_method": "pm_card_amex"})
    assert (p.amount, p.metadata, p.statement_descriptor_suffix, p.capture_method) == (
        Money(700, "eur"), {"b": "2", "c": "3"}, "NEW", "automatic_async")
    assert (p.status, p.payment_method) == (S.REQUIRES_CONFIRMATION, "pm_card_amex")


@pytest.mark.parametrize("status", [S.REQUIRES_ACTION, S.REQUIRES_CAPTURE, S.SUCCEEDED])
@pytest.mark.parametrize("field", ["amount", "currency", "payment_method", "capture_method",
                                   "statement_descriptor", "setup_future_usage",
                                   "payment_method_options"])
def test_after_confirmation_the_terms_are_fixed(status: S, field: str) -> None:
    p = make(status)
    value = {"amount": 5, "currency": "eur", "payment_method": "pm_card_amex",
             "capture_method": "automatic", "statement_descriptor": "X",
             "setup_future_usage": "off_session",
             "payment_method_options": {"card": {"capture_method": "manual"}}}[field]
    before = (p.amount, p.payment_method, p.capture_method, p.status)
    with pytest.raises(InvalidRequest) as exc:
        f.update(p, {field: value, "description": "d"})
    assert (exc.value.code, exc.value.param) == ("payment_intent_unexpected_state", field)
    assert (p.amount, p.payment_method, p.capture_method, p.status) == before
    assert p.description is None  # refused whole


@pytest.mark.parametrize("status", [S.REQUIRES_ACTION, S.REQUIRES_CAPTURE, S.SUCCEEDED])
def test_descriptive_fields_change_later_too(status: S) -> None:
    p = make(status)
    f.update(p, {"description": "packed", "metadata": {"box": "4"},
                 "receipt_email": "a@b.co", "shipping": {"name": "A", "address": {}}})
    assert (p.description, p.metadata, p.receipt_email, p.status) == (
        "packed", {"box": "4"}, "a@b.co", status)


@pytest.mark.parametrize("status", [S.PROCESSING, S.CANCELED])
def test_nothing_changes_while_processing_or_once_canceled(status: S) -> None:
    with pytest.raises(InvalidRequest, match=f"status of {status.value}"):
        f.update(make(status), {"metadata": {"a": "1"}})


@given(st.dictionaries(st.text(min_size=1, max_size=5), st.text(max_size=5), max_size=10),
       st.dictionaries(st.text(min_size=1, max_size=5),
                       st.none() | st.text(min_size=1, max_size=5), max_size=10))
def test_metadata_patch_sets_removes_and_keeps(current, patch) -> None:
    merged = f.merge_metadata(current, patch)
    for key, value in patch.items():
        assert merged.get(key) == value
    for key in set(current) - set(patch):
        assert merged[key] == current[key]
    assert f.merge_metadata(current, None) == {}


def test_card_options_merge_and_unset() -> None:
    current = {"card": {"capture_method": "manual", "setup_future_usage": "off_session"}}
    assert f.merge_options(current, {"card": {"capture_method": ""}}) == {
        "card": {"setup_future_usage": "off_session"}}
    assert f.merge_options({"card": {"capture_method": "manual"}},
                           {"card": {"capture_method": ""}}) is None


def test_no_kassa_refund_is_cancelable_and_failure_reason_shows_once_failed() -> None:
    r = Refund(id="re_1", merchant_id="acct_1", payment_intent_id="pi_1",
               amount=Money(100, "usd"), status=RefundStatus.PENDING, created=1)
    for status in RefundStatus:
        r.status = status
        with pytest.raises(IllegalTransition, match="cancel this Refund"):
            r.cancel()
    r.status = RefundStatus.SUCCEEDED
    assert "failure_reason" not in render_refund(r, charge="ch_1")
    r.status, r.failure_reason = RefundStatus.FAILED, "expired_or_canceled_card"
    assert render_refund(r, charge="ch_1")["failure_reason"] == "expired_or_canceled_card"
