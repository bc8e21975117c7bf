"""Request schemas: strict integers and parameter names, form strings accepted, metadata limits;
and the Stripe-shaped 400 each rejection becomes."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from kassa.api import errors
from kassa.api.params import parse_form
from kassa.api.schemas import (
    ListQuery,
    PaymentIntentCancel,
    PaymentIntentCapture,
    PaymentIntentConfirm,
    PaymentIntentCreate,
    RefundCreate,
)
from kassa.domain.lists import Bounds

BASE: dict[str, Any] = {"amount": "100", "currency": "usd"}


def reject(model: type, data: dict[str, Any]) -> dict[str, Any]:
    """Validate, expecting a 400; return the Stripe error object."""
    with pytest.raises(ValidationError) as exc:
        model.model_validate(data)
    status, body = errors.for_exception(exc.value)
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error"
    return body["error"]


@pytest.mark.parametrize(("value", "expected"), [
    ("100", 100), (100, 100), (" 100 ", 100), ("0", 0), ("-5", -5), (1.0, 1),
    ("99999999", 99_999_999),
])
def test_integer_amounts(value, expected):
    # range checks (>= 1, <= MAX_AMOUNT) belong to the domain, not the schema
    assert PaymentIntentCreate.model_validate({**BASE, "amount": value}).amount == expected


@pytest.mark.parametrize("value", [
    "1.5", 1.5, True, False, "true", "abc", "", None, "1e3", "+5", "0x10", "1_000", [1],
    {"a": 1}, "1" * 31,
])
def test_non_integer_amounts_are_refused(value):
    err = reject(PaymentIntentCreate, {**BASE, "amount": value})
    # Stripe's code, its documentation page, and its wording ("Invalid integer: abc")
    assert (err["code"], err["param"]) == ("parameter_invalid_integer", "amount")
    assert err["doc_url"] == "https://stripe.com/docs/error-codes/parameter-invalid-integer"
    assert err["message"].startswith("Invalid integer: ")


def test_an_invalid_integer_echoes_a_bounded_part_of_what_was_sent():
    err = reject(PaymentIntentCreate, {**BASE, "amount": "x" * 5000})
    assert err["message"] == "Invalid integer: " + "x" * 100 + "…"


@pytest.mark.parametrize(("value", "code"), [("", "parameter_invalid_empty"),
                                             ("   ", "parameter_invalid_string_blank")])
def test_empty_and_blank_strings_get_stripes_codes(value, code):
    err = reject(PaymentIntentCreate, {**BASE, "payment_method": value})
    assert (err["code"], err["param"]) == (code, "payment_method")
    assert err["doc_url"] == "https://stripe.com/docs/error-codes/" + code.replace("_", "-")


def test_kassas_own_codes_carry_no_doc_url():
    err = reject(PaymentIntentCreate, {**BASE, "currency": "us"})
    assert err["code"] == "parameter_invalid" and "doc_url" not in err


@pytest.mark.parametrize("value", ["١٠٠", "１００"])  # Arabic-Indic, full-width
def test_non_ascii_digits_are_refused(value):
    reject(PaymentIntentCreate, {**BASE, "amount": value})


def test_integer_fields_on_other_schemas():
    assert PaymentIntentCapture.model_validate({"amount_to_capture": "50"}).amount_to_capture == 50
    assert RefundCreate.model_validate({"payment_intent": "pi_1", "amount": "7"}).amount == 7
    err = reject(RefundCreate, {"payment_intent": "pi_1", "amount": "7.5"})
    assert err["param"] == "amount"
    err = reject(PaymentIntentCapture, {"amount_to_capture": True})
    assert err["param"] == "amount_to_capture"


@pytest.mark.parametrize(("model", "data", "param"), [
    (PaymentIntentCreate, {**BASE, "amout": "1"}, "amout"),
    (PaymentIntentCreate, {**BASE, "on_behalf_of": "acct_1"}, "on_behalf_of"),
    (PaymentIntentConfirm, {"payment_method": "pm_card_visa", "mandate": "mandate_1"},
     "mandate"),
    (PaymentIntentCapture, {"amount": "5"}, "amount"),
    (PaymentIntentCancel, {"reason": "duplicate"}, "reason"),
    (RefundCreate, {"payment_intent": "pi_1", "refund_application_fee": "true"},
     "refund_application_fee"),
])
def test_unknown_parameter_is_refused(model, data, param):
    err = reject(model, data)
    assert err["code"] == "parameter_unknown"
    assert err["param"] == param
    assert err["message"] == f"Received unknown parameter: {param}"


def test_missing_required_parameter():
    err = reject(PaymentIntentCreate, {"currency": "usd"})
    assert (err["code"], err["param"]) == ("parameter_missing", "amount")


def test_form_encoded_create_validates():
    raw = parse_form(b"amount=2000&currency=usd&confirm=true&payment_method=pm_card_visa"
                     b"&metadata[order]=7&expand[]=latest_charge&capture_method=manual")
    body = PaymentIntentCreate.model_validate(raw)
    assert (body.amount, body.currency, body.confirm, body.capture_method) == (
        2000, "usd", True, "manual")
    assert body.metadata == {"order": "7"}
    assert body.expand == ["latest_charge"]


@pytest.mark.parametrize(("value", "expected"), [
    ("true", True), ("false", False), ("TRUE", True), (True, True), (False, False),
])
def test_booleans(value, expected):
    assert PaymentIntentCreate.model_validate({**BASE, "confirm": value}).confirm is expected


@pytest.mark.parametrize("value", ["yes", "1", 1, 0, "", None])
def test_non_booleans_are_refused(value):
    assert reject(PaymentIntentCreate, {**BASE, "confirm": value})["param"] == "confirm"


@pytest.mark.parametrize(("field", "value"), [
    ("currency", "usdd"), ("currency", "us"), ("capture_method", "later"),
    ("payment_method", ""), ("description", "x" * 1001), ("payment_method_types", ["sepa"]),
])
def test_field_constraints(field, value):
    assert reject(PaymentIntentCreate, {**BASE, field: value})["param"].startswith(field)


# --------------------------------------------------------------------- metadata


def meta(value: Any) -> dict[str, str] | None:
    return PaymentIntentCreate.model_validate({**BASE, "metadata": value}).metadata


def test_metadata_values_become_strings_and_empty_values_unset():
    assert meta({"order": "7", "n": 5, "f": 1.5, "gone": ""}) == {
        "order": "7", "n": "5", "f": "1.5"}
    assert meta("") == {}
    assert meta({}) == {}


def test_metadata_limits_at_the_boundary_are_accepted():
    assert len(meta({f"k{i}": "v" for i in range(50)}) or {}) == 50
    assert meta({"k" * 40: "v" * 500}) == {"k" * 40: "v" * 500}


@pytest.mark.parametrize("value", [
    {f"k{i}": "v" for i in range(51)},  # more than 50 keys
    {"k" * 41: "v"},  # key longer than 40
    {"k": "v" * 501},  # value longer than 500
    {"k": {"nested": "x"}},
    {"k": ["a"]},
    {"k": True},
    "not-an-object",
    ["a", "b"],
])
def test_metadata_beyond_the_limits_is_refused(value):
    err = reject(PaymentIntentCreate, {**BASE, "metadata": value})
    assert (err["code"], err["param"]) == ("parameter_invalid", "metadata")


def test_metadata_limits_apply_to_refunds_too():
    err = reject(RefundCreate, {"payment_intent": "pi_1", "metadata": {"k": "v" * 501}})
    assert err["param"] == "metadata"


# --------------------------------------------------------------------- list query


@pytest.mark.parametrize(("value", "ok"), [
    ("1", True), ("100", True), ("0", False), ("101", False), ("ten", False),
])
def test_list_limit(value, ok):
    if ok:
        assert ListQuery.model_validate({"limit": value}).limit == int(value)
    else:
        with pytest.raises(ValidationError):
            ListQuery.model_validate({"limit": value})


def test_list_query_defaults_and_refuses_other_query_parameters():
    assert ListQuery.model_validate({}).limit == 10
    with pytest.raises(ValidationError) as e:
        ListQuery.model_validate({"foo": "bar"})
    assert e.value.errors()[0]["type"] == "extra_forbidden"


def test_list_query_created_is_a_range_or_an_instant():
    assert ListQuery.model_validate({"created": {"gte": "10", "lt": "20"}}).created == \
        Bounds(gte=10, lt=20)
    assert ListQuery.model_validate({"created": "7"}).created == Bounds(gte=7, lte=7)
    for bad in ({"around": "1"}, {"gt": "x"}, "-1", {"lt": str(2**63)}):
        with pytest.raises(ValidationError):
            ListQuery.model_validate({"created": bad})
