"""Payments core: merchants, keys, idempotency, payment intents, attempts, refunds, ledger, events.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None

# Hot-path tables carry no foreign key to `merchants`: every insert would take a KEY SHARE
# lock on the merchant row, which serialises a busy merchant (PERFORMANCE.md). Tenancy is
# enforced by every query filtering on merchant_id instead.
UPGRADE = r"""
CREATE TABLE merchants (
    id          text PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created     bigint NOT NULL
);

CREATE TABLE api_keys (
    id          text PRIMARY KEY,
    merchant_id text NOT NULL REFERENCES merchants(id),
    kind        text NOT NULL CHECK (kind IN ('secret', 'publishable')),
    livemode    boolean NOT NULL DEFAULT false,
    key_hash    bytea NOT NULL UNIQUE,         -- sha256 of the key; the key is shown once
    last4       text NOT NULL,
    created     bigint NOT NULL,
    revoked_at  timestamptz
);

CREATE TABLE idempotency_keys (
    merchant_id     text NOT NULL,
    key             text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    fingerprint     bytea NOT NULL,            -- sha256(method, path, canonical params)
    method          text NOT NULL,
    path            text NOT NULL,
    locked_at       timestamptz,               -- non-null while a request executes it
    response_status integer,
    response_body   bytea,
    resource_id     text,                      -- recovery point: object created by the request
    created_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz,
    PRIMARY KEY (merchant_id, key),
    CHECK ((response_status IS NULL) = (completed_at IS NULL))
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

CREATE TABLE payment_intents (
    seq                 bigint GENERATED ALWAYS AS IDENTITY,
    id                  text PRIMARY KEY,
    merchant_id         text NOT NULL,
    amount              bigint NOT NULL CHECK (amount > 0 AND amount <= 99999999),
    currency            text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    status              text NOT NULL CHECK (status IN ('requires_payment_method',
                          'requires_confirmation', 'requires_action', 'processing',
                          'requires_capture', 'succeeded', 'canceled')),
    capture_method      text NOT NULL CHECK (capture_method IN ('automatic', 'manual')),
    payment_method      text,
    description         text,
    metadata            jsonb NOT NULL DEFAULT '{}',
    amount_capturable   bigint NOT NULL DEFAULT 0,
    amount_received     bigint NOT NULL DEFAULT 0,
    amount_refunded     bigint NOT NULL DEFAULT 0,
    last_payment_error  jsonb,
    next_action         jsonb,
    canceled_at         bigint,
    cancellation_reason text,
    latest_charge       text,
    psp                 text,
    psp_reference       text,
    pending_attempt_id  text,
    created             bigint NOT NULL,
    version             integer NOT NULL DEFAULT 0,
    CHECK (amount_capturable BETWEEN 0 AND amount),
    CHECK (amount_received BETWEEN 0 AND amount),
    CHECK (amount_refunded BETWEEN 0 AND amount_received),
    CHECK (status <> 'succeeded' OR amount_received > 0)
);
CREATE INDEX payment_intents_merchant_seq ON payment_intents (merchant_id, seq);

-- One row per PSP call sequence. Its id is the idempotency key sent to the PSP.
CREATE TABLE attempts (
    id                text PRIMARY KEY,
    merchant_id       text NOT NULL,
    payment_intent_id text NOT NULL REFERENCES payment_intents(id),
    refund_id         text,
    operation         text NOT NULL CHECK (operation IN ('authorize', 'capture', 'void', 'refund')),
    psp               text NOT NULL,
    status            text NOT NULL CHECK (status IN ('started', 'succeeded', 'requires_action',
                        'failed', 'unknown')),
    amount            bigint NOT NULL CHECK (amount >= 0),
    currency          text NOT NULL,
    capture           boolean NOT NULL DEFAULT false,
    psp_reference     text,
    error             jsonb,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX attempts_open ON attempts (updated_at) WHERE status IN ('started', 'unknown');
CREATE INDEX attempts_payment ON attempts (payment_intent_id);
-- at most one successful authorisation per payment: nobody is charged twice
CREATE UNIQUE INDEX attempts_one_authorization ON attempts (payment_intent_id)
    WHERE operation = 'authorize' AND status = 'succeeded';
CREATE UNIQUE INDEX attempts_one_capture ON attempts (payment_intent_id)
    WHERE operation = 'capture' AND status = 'succeeded';

CREATE TABLE refunds (
    seq               bigint GENERATED ALWAYS AS IDENTITY,
    id                text PRIMARY KEY,
    merchant_id       text NOT NULL,
    payment_intent_id text NOT NULL REFERENCES payment_intents(id),
    amount            bigint NOT NULL CHECK (amount > 0),
    currency          text NOT NULL,
    status            text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed',
                        'canceled')),
    reason            text,
    metadata          jsonb NOT NULL DEFAULT '{}',
    failure_reason    text,
    psp_reference     text,
    attempt_id        text,
    created           bigint NOT NULL,
    version           integer NOT NULL DEFAULT 0
);
CREATE INDEX refunds_merchant_seq ON refunds (merchant_id, seq);
CREATE INDEX refunds_payment ON refunds (payment_intent_id);

-- Double-entry ledger. Entries are append-only; each transaction sums to zero per
-- currency and layer (checked at COMMIT by a deferred constraint trigger).
CREATE TABLE ledger_transactions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('authorization_hold', 'authorization_release',
                  'capture', 'refund', 'refund_reversal', 'availability')),
    merchant_id text NOT NULL,
    source_id   text NOT NULL,                 -- the pi_/ch_/re_/txn_ that caused it
    hold_ref    text,                          -- the hold (authorisation) this resolves
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    UNIQUE (kind, source_id)                   -- each money event posts once
);
-- a hold is resolved (captured or released) exactly once
CREATE UNIQUE INDEX ledger_transactions_hold_resolved_once ON ledger_transactions (hold_ref)
    WHERE kind IN ('capture', 'authorization_release') AND hold_ref IS NOT NULL;

CREATE TABLE ledger_entries (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- no FOREIGN KEY: ledger_entries_same_transaction checks the header exists (and is
    -- this database transaction's), which an FK check would only repeat
    transaction_id bigint NOT NULL,
    account        text NOT NULL,
    currency       text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    layer          text NOT NULL CHECK (layer IN ('posted', 'pending')),
    amount         bigint NOT NULL CHECK (amount <> 0)   -- debit > 0, credit < 0
);
CREATE INDEX ledger_entries_account ON ledger_entries (account, currency, layer) INCLUDE (amount);
CREATE INDEX ledger_entries_transaction ON ledger_entries (transaction_id);

CREATE FUNCTION kassa_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION kassa_refuse_change();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION kassa_refuse_change();
CREATE TRIGGER ledger_transactions_append_only BEFORE UPDATE OR DELETE ON ledger_transactions
    FOR EACH ROW EXECUTE FUNCTION kassa_refuse_change();
CREATE TRIGGER ledger_transactions_no_truncate BEFORE TRUNCATE ON ledger_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION kassa_refuse_change();

-- Checked once per ledger transaction at COMMIT (not once per entry): by then every entry
-- is in, because entries can only join a header created in the same database transaction
-- (ledger_entries_same_transaction below).
CREATE FUNCTION kassa_check_balanced() RETURNS trigger LANGUAGE plpgsql
SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    n integer;
    bad record;
BEGIN
    SELECT count(*) INTO n FROM ledger_entries WHERE transaction_id = NEW.id;
    IF n < 2 THEN
        RAISE EXCEPTION 'ledger transaction % has % entries; at least 2 required', NEW.id, n
            USING ERRCODE = 'check_violation';
    END IF;
    SELECT currency, layer, sum(amount) AS total INTO bad
      FROM ledger_entries WHERE transaction_id = NEW.id
     GROUP BY currency, layer HAVING sum(amount) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger transaction % is unbalanced: % % sums to %',
            NEW.id, bad.currency, bad.layer, bad.total USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER ledger_transactions_balanced AFTER INSERT ON ledger_transactions
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kassa_check_balanced();

-- Entries join their transaction only in the database transaction that created it: a
-- committed ledger transaction can never gain entries later (append-only per transaction).
CREATE FUNCTION kassa_check_same_transaction() RETURNS trigger LANGUAGE plpgsql
SET plan_cache_mode = force_custom_plan AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ledger_transactions WHERE id = NEW.transaction_id
                    AND created_xid = pg_current_xact_id()) THEN
        RAISE EXCEPTION 'ledger transaction % is closed; post a new transaction instead',
            NEW.transaction_id USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER ledger_entries_same_transaction BEFORE INSERT ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION kassa_check_same_transaction();

-- Stripe's balance transactions: what each money event did to the merchant's balance.
CREATE TABLE balance_transactions (
    seq                   bigint GENERATED ALWAYS AS IDENTITY,
    id                    text PRIMARY KEY,
    merchant_id           text NOT NULL,
    amount                bigint NOT NULL,
    fee                   bigint NOT NULL,
    net                   bigint NOT NULL,
    currency              text NOT NULL,
    type                  text NOT NULL,
    source                text NOT NULL,
    status                text NOT NULL CHECK (status IN ('pending', 'available')),
    available_on          bigint NOT NULL,
    created               bigint NOT NULL,
    description           text,
    ledger_transaction_id bigint NOT NULL REFERENCES ledger_transactions(id),
    CHECK (net = amount - fee)
);
CREATE INDEX balance_transactions_merchant_seq ON balance_transactions (merchant_id, seq);
CREATE INDEX balance_transactions_due ON balance_transactions (available_on)
    WHERE status = 'pending';

-- Transactional outbox: written in the same transaction as the change it describes.
-- xid lets a relay read strictly in commit-safe order (rows below pg_snapshot_xmin).
CREATE TABLE events (
    seq         bigint GENERATED ALWAYS AS IDENTITY,
    id          text PRIMARY KEY,
    merchant_id text NOT NULL,
    type        text NOT NULL,
    object_id   text NOT NULL,
    data        jsonb NOT NULL,
    created     bigint NOT NULL,
    xid         xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX events_merchant_seq ON events (merchant_id, seq);
CREATE INDEX events_object ON events (object_id);
"""

DOWNGRADE = r"""
DROP TABLE events, balance_transactions, ledger_entries, ledger_transactions, refunds,
    attempts, payment_intents, idempotency_keys, api_keys, merchants;
DROP FUNCTION kassa_check_balanced();
DROP FUNCTION kassa_check_same_transaction();
DROP FUNCTION kassa_refuse_change();
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
