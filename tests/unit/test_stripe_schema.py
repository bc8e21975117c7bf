"""The schema checker reads stripe-python's declarations and finds what departs from them."""

from __future__ import annotations

import copy

import pytest
import stripe

from tests.support.stripe_schema import (
    assert_stripe_list,
    assert_stripe_shape,
    declared_fields,
    resource_class,
    stripe_shape_problems,
)

CARD_PM = {
    "id": "pm_1", "object": "payment_method", "billing_details": {
        "address": None, "email": None, "name": None, "phone": None, "tax_id": None},
    "card": {"brand": "visa", "checks": None, "country": "US", "exp_month": 12,
             "exp_year": 2030, "funding": "credit", "last4": "4242", "networks": None,
             "three_d_secure_usage": None, "wallet": None, "display_brand": "visa",
             "fingerprint": None, "generated_from": None, "regulated_status": None},
    "created": 1, "livemode": False, "type": "card", "customer": None, "metadata": {},
}

INTENT = {
    "id": "pi_1", "object": "payment_intent", "amount": 100, "amount_capturable": 0,
    "amount_received": 0, "capture_method": "automatic", "confirmation_method": "automatic",
    "created": 1, "currency": "usd", "livemode": False, "metadata": {},
    "payment_method_types": ["card"], "status": "requires_payment_method",
    "last_payment_error": {"type": "card_error", "code": "card_declined",
                           "payment_method": CARD_PM, "charge": "ch_1"},
    "latest_charge": "ch_1",
}


def test_an_object_of_the_declared_shape_has_no_problems() -> None:
    assert stripe_shape_problems(INTENT, "PaymentIntent") == []
    assert_stripe_shape(CARD_PM, stripe.PaymentMethod)
    assert_stripe_shape(INTENT)  # the class named by the object's own tag


def test_the_declarations_come_from_the_installed_sdk() -> None:
    fields = declared_fields(stripe.Refund)
    assert set(fields) == {k for k in stripe.Refund.__annotations__ if k != "OBJECT_NAME"}
    assert not fields["amount"].optional and fields["failure_reason"].optional
    # inherited annotations count too (ListObject declares data/has_more/url)
    assert {"data", "has_more", "url"} <= set(declared_fields(stripe.ListObject))


def test_a_missing_always_present_field_is_named_and_a_missing_optional_one_is_not() -> None:
    obj = {k: v for k, v in INTENT.items() if k not in ("amount_received", "latest_charge")}
    assert stripe_shape_problems(obj, "PaymentIntent") == [
        "payment_intent.amount_received: missing (the SDK declares it always present)"]


def test_a_field_the_sdk_does_not_declare_is_named() -> None:
    obj = {**INTENT, "amount_refunded": 0}
    assert stripe_shape_problems(obj, "PaymentIntent") == [
        "payment_intent.amount_refunded: not a field stripe-python declares on PaymentIntent"]


def test_nested_inner_classes_are_checked() -> None:
    obj = copy.deepcopy(INTENT)
    del obj["last_payment_error"]["payment_method"]["card"]["last4"]
    obj["last_payment_error"]["payment_method"]["card"]["pan"] = "4242424242424242"
    assert stripe_shape_problems(obj, "PaymentIntent") == [
        "payment_intent.last_payment_error.payment_method.card.last4: missing (the SDK "
        "declares it always present)",
        "payment_intent.last_payment_error.payment_method.card.pan: not a field stripe-python "
        "declares on PaymentMethod.Card"]


def test_an_expandable_field_may_be_an_id_or_the_expanded_object_checked_in_full() -> None:
    refund = {"id": "re_1", "object": "refund", "amount": 5, "created": 1, "currency": "usd",
              "payment_intent": "pi_1"}
    assert stripe_shape_problems(refund, "Refund") == []
    expanded = {**refund, "payment_intent": {**INTENT, "amount": "100"}}
    assert stripe_shape_problems(expanded, "Refund") == [
        "refund.payment_intent.amount: '100' is not int"]


def test_a_union_of_resources_is_told_apart_by_the_object_tag() -> None:
    txn = {"id": "txn_1", "object": "balance_transaction", "amount": 5, "available_on": 1,
           "balance_type": "payments", "created": 1, "currency": "usd", "fee": 0,
           "fee_details": [{"amount": 1, "currency": "usd", "type": "stripe_fee"}],
           "net": 5, "reporting_category": "charge", "status": "pending", "type": "charge",
           "source": {"id": "re_1", "object": "refund", "amount": 5, "created": 1}}
    assert stripe_shape_problems(txn, "BalanceTransaction") == [
        "balance_transaction.source.currency: missing (the SDK declares it always present)"]
    txn["source"]["object"] = "payment_intent"  # a type BalanceTransaction.source is not
    assert stripe_shape_problems(txn, "BalanceTransaction")[-1].startswith(
        "balance_transaction.source: object 'payment_intent' is none of")


def test_list_pages_and_their_items_are_checked() -> None:
    charge_refunds = {"object": "list", "url": "/v1/refunds", "has_more": False,
                      "data": [{"id": "re_1", "object": "refund", "amount": 5, "created": 1}]}
    charge = {"id": "ch_1", "object": "charge", "amount": 5, "amount_captured": 5,
              "amount_refunded": 5, "billing_details": CARD_PM["billing_details"],
              "captured": True, "created": 1, "currency": "usd", "disputed": False,
              "livemode": False, "metadata": {}, "paid": True, "refunded": True,
              "status": "succeeded", "refunds": charge_refunds}
    assert stripe_shape_problems(charge, "Charge") == [
        "charge.refunds.data[0].currency: missing (the SDK declares it always present)"]
    charge["refunds"] = {**charge_refunds, "total_count": 1}
    assert "charge.refunds.total_count: not a field of a stripe list object" in \
        stripe_shape_problems(charge, "Charge")
    assert_stripe_list({**charge_refunds, "data": [{**charge_refunds["data"][0],
                                                    "currency": "usd"}]}, "Refund")
    with pytest.raises(AssertionError, match=r"list.data\[0\].currency: missing"):
        assert_stripe_list(charge_refunds, "Refund")


def test_nulls_and_scalar_types_follow_the_annotations() -> None:
    assert stripe_shape_problems({**INTENT, "amount": None}, "PaymentIntent") == [
        "payment_intent.amount: null, but the SDK declares it non-nullable"]
    assert stripe_shape_problems({**INTENT, "livemode": 0}, "PaymentIntent") == [
        "payment_intent.livemode: 0 is not bool"]
    assert stripe_shape_problems({**INTENT, "payment_method_types": "card"},
                                 "PaymentIntent") == [
        "payment_intent.payment_method_types: 'card' is not list[str]"]
    assert stripe_shape_problems({**INTENT, "metadata": {"free": "form"}}, "PaymentIntent") == []


def test_an_event_payload_is_checked_against_the_class_its_tag_names() -> None:
    event = {"id": "evt_1", "object": "event", "created": 1, "livemode": False,
             "pending_webhooks": 0, "type": "payment_intent.created",
             "api_version": "2024-06-20", "request": {"id": None, "idempotency_key": None},
             "data": {"object": {**INTENT, "amount_refunded": 0}}}
    assert stripe_shape_problems(event) == [
        "event.data.object.amount_refunded: not a field stripe-python declares on "
        "PaymentIntent"]


def test_resources_are_found_by_class_name_or_object_tag() -> None:
    assert resource_class("Refund") is stripe.Refund
    assert resource_class("balance_transaction") is stripe.BalanceTransaction
    assert resource_class(stripe.Charge) is stripe.Charge
    with pytest.raises(LookupError):
        resource_class("NoSuchThing")
