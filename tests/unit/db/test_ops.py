"""The typed ops (db/ops.py) against kassa_apply (db/sql/apply.sql): every op class has a WHEN
branch and every WHEN branch an op class, and each op serialises to exactly the JSON object
the branch reads (the dicts the builders sent before the ops were typed)."""

from __future__ import annotations

import re
from importlib import resources

from kassa.db import ops
from kassa.domain.payments import AttemptStatus, PaymentStatus
from tests.support.ops_samples import NOW, entities, one_of_each


def when_branches() -> set[str]:
    sql = resources.files("kassa.db").joinpath("sql/apply.sql").read_text()
    body = sql[sql.index("CASE o->>'op'"):sql.index("END CASE")]
    return set(re.findall(r"^\s*WHEN '([a-z_]+)' THEN", body, flags=re.MULTILINE))


def test_every_op_class_is_a_when_branch_of_apply_sql_and_back() -> None:
    names = [cls.op for cls in ops.ALL]
    assert len(names) == len(set(names))
    assert set(names) == when_branches()
    assert len(when_branches()) >= 14


def test_the_unit_of_work_union_is_every_op_but_the_balance_transaction() -> None:
    assert set(ops.Op.__args__) == set(ops.ALL) - {ops.InsertBalanceTransaction}


def test_wire_puts_a_postings_balance_transaction_right_after_it() -> None:
    unit = one_of_each("acct_1", "w")
    sent = [o["op"] for o in ops.wire(unit)]
    assert sent.index("insert_balance_transaction") == sent.index("post_ledger") + 1
    assert set(sent) == {cls.op for cls in ops.ALL}
    assert len(sent) == len(unit) + 1


def test_each_op_serialises_as_the_builders_did() -> None:
    p, a, c, r = entities("acct_1", "x")
    assert ops.InsertPayment.of(p).to_json() == {"op": "insert_payment", "row": {
        "id": "pi_x", "merchant_id": "acct_1", "amount": 1000, "currency": "usd",
        "status": "requires_payment_method", "capture_method": "automatic",
        "payment_method": None, "description": None, "metadata": {"order": "7"},
        "amount_capturable": 0, "amount_received": 0, "amount_refunded": 0,
        "last_payment_error": None, "next_action": None, "canceled_at": None,
        "cancellation_reason": None, "latest_charge": None, "psp": None,
        "psp_reference": None, "pending_attempt_id": None, "created": NOW, "version": 0,
        "hold_ref": None, "client_secret": "pi_x_secret_x", "confirmation_method": "automatic",
        "receipt_email": None, "statement_descriptor": None,
        "statement_descriptor_suffix": None, "setup_future_usage": None, "shipping": None,
        "automatic_payment_methods": None, "payment_method_options": None, "customer": None,
        # no conversion (domain/fx.py): the nulls clear one an earlier confirmation fixed
        "settlement_currency": None, "exchange_rate": None, "fx_rate_id": None}}
    update = ops.UpdatePayment.of(p)
    assert p.version == 1 and update.row["version"] == 0  # CAS on the version read
    p.status = PaymentStatus.CANCELED
    assert update.to_json()["row"]["status"] == "requires_payment_method"  # a snapshot

    assert ops.InsertAttempt.of(a, check_after_s=30.0).to_json() == {
        "op": "insert_attempt", "row": {
            "id": "att_x", "merchant_id": "acct_1", "payment_intent_id": "pi_x",
            "refund_id": None, "operation": "authorize", "psp": "simulator",
            "status": "started", "amount": 1000, "currency": "usd", "capture": True,
            "psp_reference": None, "error": None, "return_url": None,
            "idempotency_key": "key_x", "purpose": None, "check_after_s": 30.0}}
    a.status, a.error = AttemptStatus.FAILED, {"code": "card_declined"}
    assert ops.FinishAttempt.of(
        a, expected=(AttemptStatus.STARTED, AttemptStatus.UNKNOWN)).to_json() == {
        "op": "finish_attempt", "expected": ["started", "unknown"], "row": {
            "id": "att_x", "status": "failed", "psp_reference": None,
            "error": {"code": "card_declined"}, "check_after_s": None,
            "operation_reference": None}}
    assert ops.FailOverAttempt("ch_x", {"code": "psp_unavailable"}, 30.0).to_json() == {
        "op": "fail_over_attempt",
        "row": {"id": "ch_x", "error": {"code": "psp_unavailable"}, "check_after_s": 30.0}}
    assert ops.MarkAttemptUnknown("att_x").to_json() == {
        "op": "mark_attempt_unknown", "row": {"id": "att_x"}}
    assert ops.InsertCharge(c).to_json() == {"op": "insert_charge", "row": {
        "id": "att_x", "merchant_id": "acct_1", "payment_intent_id": "pi_x",
        "payment_method": "pm_card_visa",
        "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2034,
                 "funding": "credit", "country": "US"},
        "billing_details": {"name": "Jenny Rosen"}, "receipt_token": "rcpt_x_x_x",
        "created": NOW}}

    assert ops.InsertRefund.of(r).to_json() == {"op": "insert_refund", "row": {
        "id": "re_x", "merchant_id": "acct_1", "payment_intent_id": "pi_x", "amount": 300,
        "currency": "usd", "status": "pending", "reason": "requested_by_customer",
        "metadata": {"why": "test"}, "attempt_id": None, "created": NOW}}
    assert ops.UpdateRefund.of(r).to_json() == {"op": "update_refund", "row": {
        "id": "re_x", "version": 0, "status": "pending", "failure_reason": None,
        "psp_reference": None, "metadata": {"why": "test"}}}
    assert r.version == 1

    unit = one_of_each("acct_1", "y")
    posting = next(o for o in unit if isinstance(o, ops.PostLedger))
    assert posting.to_json() == {"op": "post_ledger", "row": {
        "kind": "capture", "merchant_id": "acct_1", "source_id": "pi_y", "hold_ref": None,
        "entries": [{"account": e.account, "currency": "usd", "layer": e.layer.value,
                     "amount": e.amount.minor} for e in posting.posting.entries]}}
    assert posting.balance_transaction is not None
    assert posting.balance_transaction.to_json() == {
        "op": "insert_balance_transaction", "row": {
            "id": "txn_y", "merchant_id": "acct_1", "amount": 1000, "fee": 59,
            "currency": "usd", "type": "charge", "source": "att_y", "status": "pending",
            "available_on": NOW + 86400, "created": NOW, "description": None}}

    rows = [{"id": "evt_1", "merchant_id": "acct_1", "type": "t", "object_id": "o",
             "data": {}, "created": NOW}]
    assert ops.InsertEvents(rows).to_json() == {"op": "insert_events", "rows": rows}
    assert ops.ClaimIdempotency(merchant_id="acct_1", key="k", fingerprint=b"\xab\x01",
                                method="POST", path="/v1/x").to_json() == {
        "op": "claim_idempotency", "row": {
            "merchant_id": "acct_1", "key": "k", "fingerprint": "ab01", "method": "POST",
            "path": "/v1/x", "request_id": None}}
    assert ops.SetIdempotencyResource(merchant_id="acct_1", key="k",
                                      resource_id="pi_x").to_json() == {
        "op": "set_idempotency_resource", "row": {
            "merchant_id": "acct_1", "key": "k", "resource_id": "pi_x"}}
    assert ops.CompleteIdempotency(merchant_id="acct_1", key="k", status=200,
                                   body=b"{}").to_json() == {
        "op": "complete_idempotency", "row": {
            "merchant_id": "acct_1", "key": "k", "status": 200, "body": "{}"}}
    assert ops.CompleteIdempotency(merchant_id="acct_1", key="k", status=200, body=b"{}",
                                   for_attempt="att_x").to_json() == {
        "op": "complete_idempotency", "row": {
            "merchant_id": "acct_1", "key": "k", "status": 200, "body": "{}",
            "only_open": True, "for_attempt": "att_x"}}
