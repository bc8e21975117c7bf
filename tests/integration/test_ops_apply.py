"""Each kassa_apply operation (db/ops.py) applied once against real PostgreSQL, in one unit
of work, and read back from the tables it writes."""

from __future__ import annotations

import secrets

from kassa.db import ops, units
from kassa.services import merchants
from kassa.services.context import Kassa
from tests.support.ops_samples import one_of_each


async def test_every_op_applies_once_and_writes_its_row(kassa: Kassa) -> None:
    mid = (await merchants.create_merchant(kassa, name="Ops merchant"))["merchant_id"]
    tag = secrets.token_hex(6)
    unit = one_of_each(mid, tag)
    sent = {o["op"] for o in ops.wire(unit)}
    assert sent == {cls.op for cls in ops.ALL}

    await units.apply(kassa.pool, unit)

    pool = kassa.pool
    p = await pool.fetchrow("SELECT status, amount_received, version, client_secret, metadata"
                            " FROM payment_intents WHERE id = $1", f"pi_{tag}")
    assert (p["status"], p["amount_received"], p["version"]) == ("succeeded", 1000, 1)
    assert p["client_secret"] == f"pi_{tag}_secret_x" and p["metadata"] == {"order": "7"}
    a = await pool.fetchrow("SELECT status, psp_reference FROM attempts WHERE id = $1",
                            f"att_{tag}")
    assert (a["status"], a["psp_reference"]) == ("succeeded", f"ch_sim_{tag}")
    c = await pool.fetchrow("SELECT card, receipt_token FROM charges WHERE id = $1",
                            f"att_{tag}")
    assert c["card"]["last4"] == "4242" and c["receipt_token"] == f"rcpt_{tag}_{tag}_{tag}"
    r = await pool.fetchrow("SELECT status, failure_reason, version FROM refunds"
                            " WHERE id = $1", f"re_{tag}")
    assert (r["status"], r["failure_reason"], r["version"]) == ("failed", "unknown", 1)
    # the balance transaction belongs to the ledger transaction posted just before it
    bt = await pool.fetchrow(
        "SELECT b.net, t.kind, t.source_id, (SELECT sum(amount) FROM ledger_entries e"
        " WHERE e.transaction_id = t.id) AS total FROM balance_transactions b"
        " JOIN ledger_transactions t ON t.id = b.ledger_transaction_id WHERE b.id = $1",
        f"txn_{tag}")
    assert (bt["net"], bt["kind"], bt["source_id"], bt["total"]) == (941, "capture",
                                                                      f"pi_{tag}", 0)
    assert await pool.fetchval("SELECT type FROM events WHERE id = $1",
                               f"evt_{tag}") == "payment_intent.succeeded"
    k = await pool.fetchrow("SELECT response_status, response_body, resource_id, request_id,"
                            " locked_at FROM idempotency_keys WHERE merchant_id = $1"
                            " AND key = $2", mid, f"key_{tag}")
    assert (k["response_status"], bytes(k["response_body"]), k["resource_id"],
            k["request_id"], k["locked_at"]) == (200, b'{"id": "pi"}', f"pi_{tag}",
                                                 f"req_{tag}", None)
