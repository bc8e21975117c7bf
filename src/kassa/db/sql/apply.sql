-- kassa_apply(ops jsonb): one unit of work's writes in one round trip (PERFORMANCE.md).
--
-- The services build a step's writes as a list of typed ops (db/ops.py: one class per WHEN
-- branch below) sent as JSON, {"op": name, "row": {...}}, and this function applies them in
-- order inside the caller's transaction (or the statement's implicit one); kassa_apply_batch (migration 0006) runs many
-- units, each in its own subtransaction. Compare-and-swap misses raise SQLSTATE KS409, mapped
-- to ConcurrentModification by db/units.py.
--
-- This file is the deployed body: `kassa migrate` (db/migrate.py) re-creates it whenever its
-- sha256 differs from the one recorded in kassa_sql_versions, after the Alembic migrations and
-- under the same advisory lock. Change an op here, not in a migration. Replicas of the previous
-- release may still send the old shape of an op while a rolling deploy runs: keep each op
-- backward compatible (see check_after_s below).
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
                created, version, client_secret, confirmation_method, receipt_email,
                statement_descriptor, statement_descriptor_suffix, setup_future_usage,
                shipping, automatic_payment_methods, payment_method_options, customer,
                settlement_currency, exchange_rate, fx_rate_id)
            SELECT id, merchant_id, amount, currency, status, capture_method, payment_method,
                description, coalesce(metadata, '{}'), coalesce(amount_capturable, 0),
                coalesce(amount_received, 0), coalesce(amount_refunded, 0), last_payment_error,
                next_action, canceled_at, cancellation_reason, latest_charge, psp,
                psp_reference, pending_attempt_id, created, coalesce(version, 0),
                -- a replica of the previous release sends no client_secret: give one anyway
                -- (32 random bytes of gen_random_uuid's CSPRNG)
                coalesce(client_secret, id || '_secret_' || replace(gen_random_uuid()::text,
                    '-', '') || replace(gen_random_uuid()::text, '-', '')),
                coalesce(confirmation_method, 'automatic'), receipt_email,
                statement_descriptor, statement_descriptor_suffix, setup_future_usage,
                shipping, automatic_payment_methods, payment_method_options, customer,
                -- a converted payment's fixed rate (domain/fx.py); absent: null
                settlement_currency, exchange_rate, fx_rate_id
            FROM jsonb_populate_record(NULL::payment_intents, r);
        WHEN 'update_payment' THEN
            -- amount, currency and capture_method change only before confirmation (the
            -- domain's rule, domain/intent_fields.py): no attempt exists yet then, so none
            -- runs on other terms. The Stripe fields are written only when sent: a replica
            -- of the previous release sends none of them and must not erase them.
            UPDATE payment_intents t SET status = x.status, payment_method = x.payment_method,
                amount = x.amount, currency = x.currency, capture_method = x.capture_method,
                receipt_email = CASE WHEN r ? 'receipt_email' THEN x.receipt_email
                    ELSE t.receipt_email END,
                statement_descriptor = CASE WHEN r ? 'statement_descriptor'
                    THEN x.statement_descriptor ELSE t.statement_descriptor END,
                statement_descriptor_suffix = CASE WHEN r ? 'statement_descriptor_suffix'
                    THEN x.statement_descriptor_suffix ELSE t.statement_descriptor_suffix END,
                setup_future_usage = CASE WHEN r ? 'setup_future_usage'
                    THEN x.setup_future_usage ELSE t.setup_future_usage END,
                shipping = CASE WHEN r ? 'shipping' THEN x.shipping ELSE t.shipping END,
                payment_method_options = CASE WHEN r ? 'payment_method_options'
                    THEN x.payment_method_options ELSE t.payment_method_options END,
                customer = CASE WHEN r ? 'customer' THEN x.customer ELSE t.customer END,
                -- the hold re-established after a capture the scheme refused (0020)
                hold_ref = CASE WHEN r ? 'hold_ref' THEN x.hold_ref ELSE t.hold_ref END,
                -- the conversion fixed at confirmation (domain/fx.py; null: none); a
                -- replica of the previous release sends none and must not erase it
                settlement_currency = CASE WHEN r ? 'exchange_rate' THEN x.settlement_currency
                    ELSE t.settlement_currency END,
                exchange_rate = CASE WHEN r ? 'exchange_rate' THEN x.exchange_rate
                    ELSE t.exchange_rate END,
                fx_rate_id = CASE WHEN r ? 'exchange_rate' THEN x.fx_rate_id
                    ELSE t.fx_rate_id END,
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
                off_session, idempotency_key, purpose, next_check_at)
            SELECT id, merchant_id, payment_intent_id, refund_id, operation, psp, status,
                amount, currency, coalesce(capture, false), psp_reference, error, return_url,
                coalesce(off_session, false), idempotency_key, purpose,
                -- a replica of the previous release sends none: watch it like 0007 did
                now() + make_interval(secs => coalesce((r->>'check_after_s')::double precision,
                                                       30))
            FROM jsonb_populate_record(NULL::attempts, r);
        WHEN 'finish_attempt' THEN
            -- check_after_s: the new status still waits (3-D Secure, a pending capture or
            -- refund, an authorisation hold's expiry); null: nothing left to watch
            -- operation_reference: the PSP's id of the modification itself, once it is known
            -- (Adyen's `received`); never erased by a later finisher that does not know it
            UPDATE attempts SET status = r->>'status', psp_reference = r->>'psp_reference',
                operation_reference = coalesce(r->>'operation_reference', operation_reference),
                error = r->'error', updated_at = now(), tries = 0,
                next_check_at = now() + make_interval(
                    secs => (r->>'check_after_s')::double precision)
            WHERE id = r->>'id' AND status IN (SELECT jsonb_array_elements_text(o->'expected'));
            GET DIAGNOSTICS n = ROW_COUNT;
            IF n <> 1 THEN
                RAISE EXCEPTION 'attempt % was already resolved', r->>'id'
                    USING ERRCODE = 'KS409';
            END IF;
        WHEN 'fail_over_attempt' THEN
            -- an authorisation the PSP provably never received (connection refused…), closed
            -- so the payment can go to the next account (services/failover.py). Only while
            -- it is `started` and recovery has never claimed it: its next look is still the
            -- first one its insert set (a claim moves it later) and not yet due, so no
            -- recovery worker is repeating the call at this PSP while another one is made.
            UPDATE attempts SET status = 'failed', error = r->'error', updated_at = now(),
                next_check_at = NULL
            WHERE id = r->>'id' AND status = 'started' AND operation = 'authorize'
              AND next_check_at > now()
              AND next_check_at <= created_at + make_interval(
                    secs => (r->>'check_after_s')::double precision);
            GET DIAGNOSTICS n = ROW_COUNT;
            IF n <> 1 THEN
                RAISE EXCEPTION 'attempt % is no longer only started', r->>'id'
                    USING ERRCODE = 'KS409';
            END IF;
        WHEN 'mark_attempt_unknown' THEN
            UPDATE attempts SET status = 'unknown', updated_at = now()
            WHERE id = r->>'id' AND status = 'started';
        WHEN 'insert_charge' THEN
            -- an authorisation attempt's charge: the card as it was (migration
            -- stripe_charges_charges); with the attempt's insert, in its step 1
            INSERT INTO charges (id, merchant_id, payment_intent_id, payment_method, card,
                billing_details, receipt_token, created)
            SELECT id, merchant_id, payment_intent_id, payment_method, card, billing_details,
                receipt_token, created
            FROM jsonb_populate_record(NULL::charges, r);
        WHEN 'insert_refund' THEN
            INSERT INTO refunds (id, merchant_id, payment_intent_id, amount, currency, status,
                reason, metadata, attempt_id, created)
            SELECT id, merchant_id, payment_intent_id, amount, currency, status, reason,
                coalesce(metadata, '{}'), attempt_id, created
            FROM jsonb_populate_record(NULL::refunds, r);
        WHEN 'update_refund' THEN
            UPDATE refunds t SET status = x.status, failure_reason = x.failure_reason,
                psp_reference = x.psp_reference,
                metadata = coalesce(x.metadata, t.metadata),  -- older replicas send none
                version = t.version + 1
            FROM jsonb_populate_record(NULL::refunds, r) x
            WHERE t.id = x.id AND t.version = x.version;
            GET DIAGNOSTICS n = ROW_COUNT;
            IF n <> 1 THEN
                RAISE EXCEPTION 'refund % was modified concurrently', r->>'id'
                    USING ERRCODE = 'KS409';
            END IF;
        WHEN 'post_ledger' THEN
            -- exchange_rate: the rate of the fx:<ccy> trading entries of a conversion
            INSERT INTO ledger_transactions (kind, merchant_id, source_id, hold_ref,
                                             exchange_rate)
            VALUES (r->>'kind', r->>'merchant_id', r->>'source_id', r->>'hold_ref',
                    (r->>'exchange_rate')::numeric)
            RETURNING id INTO tx_id;
            INSERT INTO ledger_entries (transaction_id, account, currency, layer, amount)
            SELECT tx_id, e.account, e.currency, e.layer, e.amount
            FROM jsonb_to_recordset(r->'entries')
                AS e(account text, currency text, layer text, amount bigint);
        WHEN 'insert_balance_transaction' THEN
            -- belongs to the ledger transaction posted just before it in this unit of work
            INSERT INTO balance_transactions (id, merchant_id, amount, fee, net, currency, type,
                source, status, available_on, created, description, ledger_transaction_id,
                exchange_rate)
            SELECT b.id, b.merchant_id, b.amount, b.fee, b.amount - b.fee, b.currency, b.type,
                b.source, b.status,
                -- none given: the merchant's settlement delay (domain/settlement.py available_on:
                -- 00:00 UTC, delay_days after the day of capture; 2 without settings)
                coalesce(b.available_on, (b.created / 86400 + coalesce((SELECT s.delay_days
                    FROM payout_settings s WHERE s.merchant_id = b.merchant_id), 2)) * 86400),
                b.created, b.description, tx_id, b.exchange_rate  -- null: not converted
            FROM jsonb_populate_record(NULL::balance_transactions, r) AS b;
        WHEN 'insert_events' THEN
            INSERT INTO events (id, merchant_id, type, object_id, data, created)
            SELECT e.id, e.merchant_id, e.type, e.object_id, e.data, e.created
            FROM jsonb_to_recordset(o->'rows') AS e(id text, merchant_id text, type text,
                object_id text, data jsonb, created bigint);
        WHEN 'claim_idempotency' THEN
            -- first write of a request that carries an Idempotency-Key: a duplicate key
            -- fails here (unique violation) and rolls the whole unit of work back;
            -- resource_id: the recovery point set in the same unit (one row version, not an
            -- insert and then set_idempotency_resource's update of it)
            INSERT INTO idempotency_keys (merchant_id, key, fingerprint, method, path, locked_at,
                                          request_id, resource_id)
            VALUES (r->>'merchant_id', r->>'key', decode(r->>'fingerprint', 'hex'),
                    r->>'method', r->>'path', now(), r->>'request_id', r->>'resource_id');
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
        WHEN 'save_payment_method' THEN
            -- setup_future_usage: the succeeded intent's card becomes its customer's, unless
            -- it was attached or detached meanwhile (a detached card is never used again) or
            -- the customer deleted (services/saved_cards.py)
            UPDATE kassa_vault.payment_methods SET customer = r->>'customer'
                WHERE id = r->>'id' AND merchant_id = r->>'merchant_id' AND customer IS NULL
                AND NOT detached
                AND EXISTS (SELECT 1 FROM customers c WHERE c.id = r->>'customer'
                            AND c.merchant_id = r->>'merchant_id' AND NOT c.deleted);
        WHEN 'use_payment_method' THEN
          IF r ? 'row_version' THEN
            -- the API charges a saved card from the row it kept (vault/resolver.py): the row
            -- must be unchanged since (xmin: an expiry updated, a detach, any update moves
            -- it), still this customer's, the customer not deleted; else nothing of this
            -- unit is written (KS4PC, db/units.py) and the API reads the card again
            PERFORM 1 FROM kassa_vault.payment_methods pm
                WHERE pm.id = r->>'id' AND pm.merchant_id = r->>'merchant_id'
                AND pm.xmin::text = r->>'row_version' AND pm.customer = r->>'customer'
                AND NOT pm.detached
                AND EXISTS (SELECT 1 FROM customers c WHERE c.id = r->>'customer'
                            AND c.merchant_id = r->>'merchant_id' AND NOT c.deleted);
            IF NOT FOUND THEN
                RAISE EXCEPTION USING ERRCODE = 'KS4PC',
                    MESSAGE = 'the saved card changed since this process read it';
            END IF;
          ELSE
            -- a card attached to no customer serves one payment intent only (Stripe): the
            -- first to confirm with it claims it, in that confirmation's first commit; any
            -- other intent is refused (KS4PM, db/units.py), also when two race (the loser
            -- waits on the row, then sees the winner's claim). An attached card is left alone.
            UPDATE kassa_vault.payment_methods SET used_by = r->>'payment_intent'
                WHERE id = r->>'id' AND merchant_id = r->>'merchant_id' AND customer IS NULL
                AND used_by IS NULL;
            IF NOT FOUND AND EXISTS (SELECT 1 FROM kassa_vault.payment_methods
                    WHERE id = r->>'id' AND merchant_id = r->>'merchant_id'
                    AND customer IS NULL AND used_by <> r->>'payment_intent') THEN
                RAISE EXCEPTION USING ERRCODE = 'KS4PM', MESSAGE = 'The provided '
                    'PaymentMethod was previously used with a PaymentIntent without Customer '
                    'attachment, shared with a connected account without Customer attachment, '
                    'or was detached from a Customer. It may not be used again. To use a '
                    'PaymentMethod multiple times, you must attach it to a Customer first.';
            END IF;
          END IF;
        ELSE
            RAISE EXCEPTION 'kassa_apply: unknown operation %', o->>'op';
        END CASE;
    END LOOP;
END $$;
