"""pgbench's limit for one payment's database work, written by hand as a single transaction.

The script mirrors what the API writes for a card payment confirmed with automatic capture
(see db/ops.py): idempotency key claimed, payment intent inserted, attempt
inserted (with the request's key and the time recovery looks at it, so it enters the partial
index ``attempts_due`` as kassa's do), payment updated, a balanced capture ledger
transaction (header + 3 entries, checked at COMMIT by the deferred trigger), a balance
transaction, two outbox events and the idempotency key completed with the stored response.
Event and response JSON are the shapes kassa.representations renders, so the byte counts
match too. Unlike the API it does it all in one transaction with no PSP call in between: it
is the ceiling.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

R = "@R@"  # marks where a per-transaction unique token goes in the generated SQL


def pi_json() -> str:
    return json.dumps({
        "id": f"pi_{R}", "object": "payment_intent", "amount": 4242, "amount_capturable": 0,
        "amount_received": 4242, "amount_refunded": 0, "canceled_at": None,
        "cancellation_reason": None, "capture_method": "automatic", "created": 1700000000,
        "currency": "usd", "description": None, "last_payment_error": None,
        "latest_charge": f"ch_{R}", "livemode": False, "metadata": {}, "next_action": None,
        "payment_method": "pm_card_visa", "payment_method_types": ["card"],
        "status": "succeeded"})


def event_json(kind: str) -> str:
    # json.dumps' ": " separator matters: pgbench would read `:name` as a variable
    return json.dumps({
        "id": f"evt_{R}", "object": "event", "api_version": "2024-06-20",
        "created": 1700000000, "data": {"object": json.loads(pi_json())}, "livemode": False,
        "pending_webhooks": 0, "type": kind})


def _literal(text: str) -> str:
    """A SQL expression for ``text`` with the unique token spliced in per transaction."""
    quoted = "'" + text.replace("'", "''") + "'"
    return quoted.replace(R, "' || :r || '")


def json_sizes() -> dict[str, int]:
    return {"event_bytes": len(event_json("payment_intent.succeeded")),
            "response_bytes": len(pi_json())}


# Account names contain ':', which pgbench would take for variables, so they are passed
# in with -D and bound as parameters like everything else.
SCRIPT = """\
\\set merchant random(1, :merchants)
\\set amount random(100, 99999)
\\set fee (:amount * 290 + 5000) / 10000 + 30
\\set net :amount - :fee
\\set negnet 0 - :net
\\set negfee 0 - :fee
\\set r random(1, 9000000000000000000)
BEGIN;
INSERT INTO idempotency_keys (merchant_id, key, fingerprint, method, path, locked_at)
  VALUES ('acct_pgb' || :merchant, 'ik_' || :r, sha256(convert_to('ik_' || :r, 'UTF8')),
          'POST', '/v1/payment_intents', now())
  ON CONFLICT DO NOTHING RETURNING 1;
INSERT INTO payment_intents (id, merchant_id, amount, currency, status, capture_method,
    payment_method, description, metadata, created)
  VALUES ('pi_' || :r, 'acct_pgb' || :merchant, :amount, 'usd', 'requires_confirmation',
          'automatic', 'pm_card_visa', NULL, '{}', extract(epoch FROM now())::bigint);
INSERT INTO attempts (id, merchant_id, payment_intent_id, refund_id, operation, psp, status,
    amount, currency, capture, psp_reference, idempotency_key, next_check_at)
  VALUES ('ch_' || :r, 'acct_pgb' || :merchant, 'pi_' || :r, NULL, 'authorize', 'simulator',
          'started', :amount, 'usd', true, NULL, 'ik_' || :r, now() + interval '30 seconds');
UPDATE payment_intents SET status = 'succeeded', amount_received = :amount,
    latest_charge = 'ch_' || :r, psp = 'simulator', psp_reference = 'sim_' || :r,
    pending_attempt_id = NULL, version = version + 1
  WHERE id = 'pi_' || :r AND version = 0;
INSERT INTO ledger_transactions (kind, merchant_id, source_id, hold_ref)
  VALUES ('capture', 'acct_pgb' || :merchant, 'pi_' || :r, NULL) RETURNING id AS tx \\gset
INSERT INTO ledger_entries (transaction_id, account, currency, layer, amount)
  VALUES (:tx, :psp_account, 'usd', 'posted', :amount),
         (:tx, :merchant_prefix || 'acct_pgb' || :merchant || :pending_suffix, 'usd',
          'posted', :negnet),
         (:tx, :fee_account, 'usd', 'posted', :negfee);
INSERT INTO balance_transactions (id, merchant_id, amount, fee, net, currency, type, source,
    status, available_on, created, description, ledger_transaction_id)
  VALUES ('txn_' || :r, 'acct_pgb' || :merchant, :amount, :fee, :net, 'usd', 'charge',
          'ch_' || :r, 'pending', extract(epoch FROM now())::bigint + 172800,
          extract(epoch FROM now())::bigint, NULL, :tx);
INSERT INTO events (id, merchant_id, type, object_id, data, created)
  VALUES ('evt_c' || :r, 'acct_pgb' || :merchant, 'payment_intent.created', 'pi_' || :r,
          (@CREATED@)::jsonb, extract(epoch FROM now())::bigint);
INSERT INTO events (id, merchant_id, type, object_id, data, created)
  VALUES ('evt_s' || :r, 'acct_pgb' || :merchant, 'payment_intent.succeeded', 'pi_' || :r,
          (@SUCCEEDED@)::jsonb, extract(epoch FROM now())::bigint);
UPDATE idempotency_keys SET locked_at = NULL, response_status = 200,
    response_body = convert_to(@RESPONSE@, 'UTF8'), completed_at = now()
  WHERE merchant_id = 'acct_pgb' || :merchant AND key = 'ik_' || :r;
COMMIT;
"""

DEFINES = {"psp_account": "psp:simulator:receivable", "fee_account": "revenue:fees",
           "merchant_prefix": "merchant:", "pending_suffix": ":pending"}


def script() -> str:
    return (SCRIPT.replace("@CREATED@", _literal(event_json("payment_intent.created")))
            .replace("@SUCCEEDED@", _literal(event_json("payment_intent.succeeded")))
            .replace("@RESPONSE@", _literal(pi_json())))


def _command(pgbench: Path, dsn: str, workdir: Path, merchants: int, *extra: str
             ) -> list[str]:
    path = workdir / "payment.sql"
    path.write_text(script())
    defines = [f"--define={k}={v}" for k, v in {**DEFINES, "merchants": merchants}.items()]
    return [str(pgbench), "--no-vacuum", "--protocol=prepared", f"--file={path}", *defines,
            *extra, dsn]


def start(pgbench: Path, dsn: str, workdir: Path, *, clients: int, threads: int,
          duration: int, merchants: int) -> subprocess.Popen[str]:
    args = _command(pgbench, dsn, workdir, merchants, f"--client={clients}",
                    f"--jobs={threads}", f"--time={duration}")
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """Wait for pgbench and parse its summary."""
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"pgbench failed ({proc.returncode}):\n{out[-3000:]}")
    return {"tps": _number(r"^tps = ([\d.]+)", out),
            "latency_avg_ms": _number(r"^latency average = ([\d.]+) ms", out),
            "failed": _number(r"^number of failed transactions: (\d+)", out),
            "transactions": _number(r"^number of transactions actually processed: (\d+)",
                                    out)}


def _number(pattern: str, text: str) -> float | None:
    m = re.search(pattern, text, re.MULTILINE)
    return float(m.group(1)) if m else None
