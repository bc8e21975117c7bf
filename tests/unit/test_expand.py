"""Which expand[] paths an object takes: refused before anything runs, as at Stripe."""

from __future__ import annotations

import pytest

from kassa.domain.errors import InvalidRequest
from kassa.services.expand import check


@pytest.mark.parametrize(("kind", "paths", "item"), [
    ("payment_intent", ["latest_charge", "payment_method"], None),
    ("payment_intent", ["latest_charge.balance_transaction"], None),
    ("payment_intent", ["latest_charge.balance_transaction.source"], None),
    ("charge", ["balance_transaction", "payment_intent", "refunds"], None),
    ("refund", ["charge", "payment_intent", "charge.balance_transaction"], None),
    ("balance_transaction", ["source", "source.payment_intent"], None),
    ("list", ["data.latest_charge", "data.latest_charge.balance_transaction"],
     "payment_intent"),
    ("list", ["data.source"], "balance_transaction"),
    ("payment_intent", [], None),
    ("payment_intent", None, None),
])
def test_expandable(kind, paths, item):
    assert check(kind, paths, item=item) == list(paths or [])


@pytest.mark.parametrize(("kind", "path", "item", "message"), [
    ("payment_intent", "nope", None, "This property cannot be expanded (nope)."),
    ("payment_intent", "latest_charge.nope", None,
     "This property cannot be expanded (latest_charge.nope)."),
    ("payment_intent", "amount", None, "This property cannot be expanded (amount)."),
    ("payment_intent", "data.latest_charge", None,
     "This property cannot be expanded (data.latest_charge)."),
    ("charge", "refunds.data", None, "This property cannot be expanded (refunds.data)."),
    ("list", "latest_charge", "payment_intent",
     "This property cannot be expanded (latest_charge). You may want to try expanding "
     "'data.latest_charge' instead."),
    ("webhook_endpoint", "application", None,
     "This property cannot be expanded (application)."),
    ("payment_intent", "latest_charge.payment_intent.latest_charge.payment_intent."
                       "latest_charge", None, "more than 4 levels"),
])
def test_not_expandable(kind, path, item, message):
    with pytest.raises(InvalidRequest) as refused:
        check(kind, [path], item=item)
    assert message in refused.value.message and refused.value.param == "expand"
