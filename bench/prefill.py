"""Bulk history for the growth check: N captured card payments written set-based with
INSERT … SELECT generate_series, in chunks of one transaction each.

Per payment, like the API writes: the payment intent, its authorisation attempt, a capture
ledger transaction with 3 balanced entries, a pending balance transaction, 2 outbox events
and a completed idempotency key (created within the last day, so still retained). Ids are
random-looking (md5) so index inserts land all over the B-trees, as the API's random ids do.

The deferred balance trigger would check 3 entries per row at COMMIT; for speed each chunk
runs with ``session_replication_role = replica`` (superuser only; skips triggers and FK
checks) and instead proves the chunk balanced with one set-based query before committing.
Without the privilege the trigger simply runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg

from bench.pgbench import event_json, pi_json

CHUNK = 50_000

# %(lo)s..%(hi)s is the chunk's range of generate_series; ids derive from md5(g) so that
# they are unique, stable and spread uniformly over the key space. One statement per
# execute: psycopg binds parameters server-side, which allows no multi-statement strings.
CHUNK_STATEMENTS = (
    """
CREATE TEMP TABLE hist ON COMMIT DROP AS
SELECT g, h, merchant_id, amount, (amount * 290 + 5000) / 10000 + 30 AS fee, created
  FROM (SELECT g, substr(md5(g::text), 1, 24) AS h,
               m.ids[1 + g %% cardinality(m.ids)] AS merchant_id,
               100 + (g * 7919) %% 99900 AS amount,
               %(now)s - (g %% 86400) AS created
          FROM generate_series(%(lo)s::bigint, %(hi)s - 1) AS g
         CROSS JOIN (SELECT array_agg(id ORDER BY id) AS ids FROM merchants) AS m) AS s
""",
    "ANALYZE hist",
    """
INSERT INTO payment_intents (id, merchant_id, amount, currency, status, capture_method,
    payment_method, amount_received, latest_charge, psp, psp_reference, created, version)
SELECT 'pi_h' || h, merchant_id, amount, 'usd', 'succeeded', 'automatic', 'pm_card_visa',
       amount, 'ch_h' || h, 'simulator', 'sim_h' || h, created, 2
  FROM hist
""",
    """
INSERT INTO attempts (id, merchant_id, payment_intent_id, operation, psp, status, amount,
    currency, capture, psp_reference, created_at, updated_at)
SELECT 'ch_h' || h, merchant_id, 'pi_h' || h, 'authorize', 'simulator', 'succeeded', amount,
       'usd', true, 'sim_h' || h, to_timestamp(created), to_timestamp(created)
  FROM hist
""",
    """
WITH tx AS (
    INSERT INTO ledger_transactions (kind, merchant_id, source_id, created_at)
    SELECT 'capture', merchant_id, 'pi_h' || h, to_timestamp(created) FROM hist
    RETURNING id, source_id
), entries AS (
    INSERT INTO ledger_entries (transaction_id, account, currency, layer, amount)
    SELECT tx.id, e.account, 'usd', 'posted', e.amount
      FROM tx JOIN hist ON tx.source_id = 'pi_h' || hist.h
     CROSS JOIN LATERAL (VALUES
         ('psp:simulator:receivable', hist.amount),
         ('merchant:' || hist.merchant_id || ':pending', -(hist.amount - hist.fee)),
         ('revenue:fees', -hist.fee)) AS e(account, amount)
)
INSERT INTO balance_transactions (id, merchant_id, amount, fee, net, currency, type, source,
    status, available_on, created, ledger_transaction_id)
SELECT 'txn_h' || h, merchant_id, amount, fee, amount - fee, 'usd', 'charge', 'ch_h' || h,
       'pending', created + 172800, created, tx.id
  FROM tx JOIN hist ON tx.source_id = 'pi_h' || hist.h
""",
    """
INSERT INTO events (id, merchant_id, type, object_id, data, created)
SELECT 'evt_h' || k || h, merchant_id, t, 'pi_h' || h,
       replace(%(event)s, '@R@', h)::jsonb, created
  FROM hist CROSS JOIN (VALUES ('c', 'payment_intent.created'),
                               ('s', 'payment_intent.succeeded')) AS kinds(k, t)
""",
    """
INSERT INTO idempotency_keys (merchant_id, key, fingerprint, method, path, response_status,
    response_body, resource_id, created_at, completed_at)
SELECT merchant_id, md5('ik' || g), sha256(convert_to(h, 'UTF8')), 'POST',
       '/v1/payment_intents', 200, convert_to(replace(%(response)s, '@R@', h), 'UTF8'),
       'pi_h' || h, to_timestamp(created), to_timestamp(created)
  FROM hist
""",
)

UNBALANCED = """
SELECT count(*) FROM (
    SELECT e.transaction_id FROM ledger_entries e
     WHERE e.transaction_id > %(after)s
     GROUP BY e.transaction_id HAVING sum(e.amount) <> 0 OR count(*) < 2) bad
"""


def _skip_triggers(conn: psycopg.Connection) -> bool:
    try:
        conn.execute("SET session_replication_role = replica")
    except psycopg.errors.InsufficientPrivilege:
        return False
    return True


def _chunk(conn: psycopg.Connection, lo: int, hi: int) -> None:
    with conn.transaction():
        after = conn.execute("SELECT coalesce(max(id), 0) FROM ledger_transactions").fetchone()
        params = {"lo": lo, "hi": hi, "now": int(time.time()),
                  "event": event_json("payment_intent.succeeded"), "response": pi_json()}
        for statement in CHUNK_STATEMENTS:
            conn.execute(statement, params if "%(" in statement else None)
        bad = conn.execute(UNBALANCED, {"after": after[0] if after else 0}).fetchone()
        if bad and bad[0]:
            raise RuntimeError(f"prefill produced {bad[0]} unbalanced ledger transactions")


def prefill(dsn: str, n: int, progress: Callable[[str], None]) -> float:
    """Insert n historical payments; returns the seconds it took."""
    started = time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:  # each chunk its own transaction
        skipped = _skip_triggers(conn)
        progress(f"prefill: {n:,} payments in chunks of {CHUNK:,}"
                 f"{' (triggers off, balance checked per chunk)' if skipped else ''}")
        for lo in range(0, n, CHUNK):
            _chunk(conn, lo, min(n, lo + CHUNK))
            done = min(n, lo + CHUNK)
            if done % (CHUNK * 4) == 0 or done == n:
                progress(f"prefill: {done:,}/{n:,} after {time.monotonic() - started:.0f}s")
    return time.monotonic() - started
