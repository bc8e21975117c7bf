"""Attempts that recovery watches until they end: 3-D Secure, pending captures and
refunds, authorisation holds, bounded retries, the request's Idempotency-Key.

Revision ID: 0008
Revises: 0007_dispute_withdrawn

- ``next_check_at``: when recovery looks at the attempt next (null: nothing to wait for).
  Every open, pending or requires_action attempt and every uncaptured authorisation hold
  has one, so a lost webhook or a dead process never leaves money unrecorded.
- ``tries``: unresolved looks since the last change; past a bound the attempt becomes
  ``needs_attention`` (listed by ``kassa attempts list --stuck``) instead of looping.
- ``pending``: the PSP accepted a capture or refund whose outcome comes later.
- ``return_url`` (the merchant's, for 3-D Secure), ``idempotency_key`` (the request's,
  so whoever records the outcome stores the key's answer), ``purpose`` (why a void was
  sent: cancel, action_expired, hold_expired).

kassa_apply is re-created whole (insert_attempt/finish_attempt carry the new columns;
complete_idempotency learns ``only_open``).
"""

from alembic import op

revision = "0008"
down_revision = "0007_dispute_withdrawn"

SCHEMA = r"""
ALTER TABLE attempts
    ADD COLUMN return_url text,
    ADD COLUMN idempotency_key text,
    ADD COLUMN purpose text CHECK (purpose IN ('cancel', 'action_expired', 'hold_expired')),
    ADD COLUMN tries integer NOT NULL DEFAULT 0,
    ADD COLUMN next_check_at timestamptz;
ALTER TABLE attempts DROP CONSTRAINT attempts_status_check;
ALTER TABLE attempts ADD CONSTRAINT attempts_status_check CHECK (status IN ('started',
    'succeeded', 'requires_action', 'failed', 'unknown', 'pending', 'needs_attention'));
UPDATE attempts SET next_check_at = updated_at + interval '30 seconds'
    WHERE status IN ('started', 'unknown');
UPDATE attempts SET next_check_at = now() WHERE status = 'requires_action';
-- holds not yet captured or released (also those with a capture or void in flight)
UPDATE attempts a SET next_check_at = a.created_at + interval '7 days'
    FROM payment_intents p
    WHERE p.id = a.payment_intent_id AND p.status IN ('requires_capture', 'processing')
      AND p.latest_charge = a.id
      AND a.operation = 'authorize' AND a.status = 'succeeded' AND NOT a.capture;
-- refunds the PSP answered pending were recorded as succeeded attempts: now pending
UPDATE attempts a SET status = 'pending', next_check_at = now()
    FROM refunds r
    WHERE r.attempt_id = a.id AND r.status = 'pending' AND a.status = 'succeeded';
DROP INDEX attempts_open;
CREATE INDEX attempts_due ON attempts (next_check_at) WHERE next_check_at IS NOT NULL;
CREATE INDEX attempts_stuck ON attempts (updated_at) WHERE status = 'needs_attention';
"""

UPGRADE = r"""
CREATE OR REPLACE FUNCTION kassa_apply(ops jsonb) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    o jsonb;
    r jsonb;
    n integer;
    tx_id bigint;
BEGIN
    FOR o IN SELECT value FROM jsonb_array_elements(ops) LOOP
        r := o->'row';
        CASE o->>'op'
        WHEN 'insert_payment' THEN
            INSERT INTO payment_intents (id, merchant_id, amount, currency, status,
                capture_method, payment_method, description, metadata, amount_capturable,
                amount_received, amount_refunded, last_payment_error, next_action, canceled_at,
                cancellation_reason, latest_charge, psp, psp_reference, pending_attempt_id,
                created, version)
            SELECT id, merchant_id, amount, currency, status, capture_method, payment_method,
                description, coalesce(metadata, '{}'), coalesce(amount_capturable, 0),
                coalesce(amount_received, 0), coalesce(amount_refunded, 0), last_payment_error,
                next_action, canceled_at, cancellation_reason, latest_charge, psp,
                psp_reference, pending_attempt_id, created, coalesce(version, 0)
            FROM jsonb_populate_record(NULL::payment_intents, r);
        WHEN 'update_payment' THEN
            UPDATE payment_intents t SET status = x.status, payment_method = x.payment_method,
                description = x.description, metadata = x.metadata,
                amount_capturable = x.amount_capturable, amount_received = x.amount_received,
                amount_refunded = x.amount_refunded, last_payment_error = x.last_payment_error,
                next_action = x.next_action, canceled_at = x.canceled_at,
                cancellation_reason = x.cancellation_reason, latest_charge = x.latest_charge,
                psp = x.psp, psp_reference = x.psp_reference,
                pending_attempt_id = x.pending_attempt_id, version = t.version + 1
            FROM jsonb_populate_record(NULL::payment_intents, r) x
            WHERE t.id = x.id AND t.version = x.version;
            GET DIAGNOSTICS n = ROW_COUNT;
            IF n <> 1 THEN
                RAISE EXCEPTION 'payment_intent % was modified concurrently', r->>'id'
                    USING ERRCODE = 'KS409';
            END IF;
        WHEN 'insert_attempt' THEN
            -- check_after_s: when recovery first looks at it if nobody records an outcome
            INSERT INTO attempts (id, merchant_id, payment_intent_id, refund_id, operation,
                psp, status, amount, currency, capture, psp_reference, error, return_url,
                idempotency_key, purpose, next_check_at)
            SELECT id, merchant_id, payment_intent_id, refund_id, operation, psp, status,
                amount, currency, coalesce(capture, false), psp_reference, error, return_url,
                idempotency_key, purpose,
                -- a replica of the previous release sends none: watch it like 0007 did
                now() + make_interval(secs => coalesce((r->>'check_after_s')::double precision,
                                                       30))
            FROM jsonb_populate_record(NULL::attempts, r);
        WHEN 'finish_attempt' THEN
            -- check_after_s: the new status still waits (3-D Secure, a pending capture or
            -- refund, an authorisation hold's expiry); null: nothing left to watch
            UPDATE attempts SET status = r->>'status', psp_reference = r->>'psp_reference',
                error = r->'error', updated_at = now(), tries = 0,
                next_check_at = now() + make_interval(
                    secs => (r->>'check_after_s')::double precision)
            WHERE id = r->>'id' AND status IN (SELECT jsonb_array_elements_text(o->'expected'));
            GET DIAGNOSTICS n = ROW_COUNT;
            IF n <> 1 THEN
                RAISE EXCEPTION 'attempt % was already resolved', r->>'id'
                    USING ERRCODE = 'KS409';
            END IF;
        WHEN 'mark_attempt_unknown' THEN
            UPDATE attempts SET status = 'unknown', updated_at = now()
            WHERE id = r->>'id' AND status = 'started';
        WHEN 'insert_refund' THEN
            INSERT INTO refunds (id, merchant_id, payment_intent_id, amount, currency, status,
                reason, metadata, attempt_id, created)
            SELECT id, merchant_id, payment_intent_id, amount, currency, status, reason,
                coalesce(metadata, '{}'), attempt_id, created
            FROM jsonb_populate_record(NULL::refunds, r);
        WHEN 'update_refund' THEN
            UPDATE refunds t SET status = x.status, failure_reason = x.failure_reason,
                psp_reference = x.psp_reference, version = t.version + 1
            FROM jsonb_populate_record(NULL::refunds, r) x
            WHERE t.id = x.id AND t.version = x.version;
            GET DIAGNOSTICS n = ROW_COUNT;
            IF n <> 1 THEN
                RAISE EXCEPTION 'refund % was modified concurrently', r->>'id'
                    USING ERRCODE = 'KS409';
            END IF;
        WHEN 'post_ledger' THEN
            INSERT INTO ledger_transactions (kind, merchant_id, source_id, hold_ref)
            VALUES (r->>'kind', r->>'merchant_id', r->>'source_id', r->>'hold_ref')
            RETURNING id INTO tx_id;
            INSERT INTO ledger_entries (transaction_id, account, currency, layer, amount)
            SELECT tx_id, e.account, e.currency, e.layer, e.amount
            FROM jsonb_to_recordset(r->'entries')
                AS e(account text, currency text, layer text, amount bigint);
        WHEN 'insert_balance_transaction' THEN
            -- belongs to the ledger transaction posted just before it in this unit of work
            INSERT INTO balance_transactions (id, merchant_id, amount, fee, net, currency, type,
                source, status, available_on, created, description, ledger_transaction_id)
            SELECT id, merchant_id, amount, fee, amount - fee, currency, type, source, status,
                available_on, created, description, tx_id
            FROM jsonb_populate_record(NULL::balance_transactions, r);
        WHEN 'insert_events' THEN
            INSERT INTO events (id, merchant_id, type, object_id, data, created)
            SELECT e.id, e.merchant_id, e.type, e.object_id, e.data, e.created
            FROM jsonb_to_recordset(o->'rows') AS e(id text, merchant_id text, type text,
                object_id text, data jsonb, created bigint);
        WHEN 'claim_idempotency' THEN
            -- first write of a request that carries an Idempotency-Key: a duplicate key
            -- fails here (unique violation) and rolls the whole unit of work back
            INSERT INTO idempotency_keys (merchant_id, key, fingerprint, method, path, locked_at)
            VALUES (r->>'merchant_id', r->>'key', decode(r->>'fingerprint', 'hex'),
                    r->>'method', r->>'path', now());
        WHEN 'set_idempotency_resource' THEN
            UPDATE idempotency_keys SET resource_id = r->>'resource_id'
            WHERE merchant_id = r->>'merchant_id' AND key = r->>'key';
        WHEN 'complete_idempotency' THEN
            -- only_open: recovery stores the answer a dead request would have given, but
            -- never replaces one that was already stored
            UPDATE idempotency_keys SET locked_at = NULL,
                response_status = (r->>'status')::integer,
                response_body = convert_to(r->>'body', 'UTF8'), completed_at = now()
            WHERE merchant_id = r->>'merchant_id' AND key = r->>'key'
                AND (r->>'only_open' IS NULL OR completed_at IS NULL)
                -- for_attempt: the key the attempt was started under, not one reused
                -- after it expired (the key row is as old as the attempt or older)
                AND (r->>'for_attempt' IS NULL OR created_at <= (SELECT a.created_at
                     FROM attempts a WHERE a.id = r->>'for_attempt'));
        ELSE
            RAISE EXCEPTION 'kassa_apply: unknown operation %', o->>'op';
        END CASE;
    END LOOP;
END $$;
"""

DOWNGRADE_SCHEMA = r"""
DROP INDEX attempts_stuck;
DROP INDEX attempts_due;
CREATE INDEX attempts_open ON attempts (updated_at) WHERE status IN ('started', 'unknown');
UPDATE attempts SET status = 'unknown' WHERE status IN ('pending', 'needs_attention');
ALTER TABLE attempts DROP CONSTRAINT attempts_status_check;
ALTER TABLE attempts ADD CONSTRAINT attempts_status_check CHECK (status IN ('started',
    'succeeded', 'requires_action', 'failed', 'unknown'));
ALTER TABLE attempts DROP COLUMN return_url, DROP COLUMN idempotency_key,
    DROP COLUMN purpose, DROP COLUMN tries, DROP COLUMN next_check_at;
"""


def upgrade() -> None:
    op.execute(SCHEMA)
    op.execute(UPGRADE)


def downgrade() -> None:
    # the function first: its 0002 body does not know the columns dropped below
    op.execute("DROP FUNCTION kassa_apply(jsonb)")
    from importlib import import_module

    previous = import_module("kassa.db.migrations.versions.0002_apply_unit_of_work")
    op.execute(previous.UPGRADE)
    op.execute(DOWNGRADE_SCHEMA)
