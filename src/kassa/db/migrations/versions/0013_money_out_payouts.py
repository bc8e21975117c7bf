"""Payouts: merchants' payout settings and bank account destinations, the payouts themselves,
the schedule periods the scheduler has made (unique per merchant, currency and period), the
payout ledger kinds, and the balance transactions a payout contains.

Revision ID: money_out_payouts
Revises: stripe_charges_charges (main's head when this was merged; the brief said 0008)

What protects money here rather than in Python alone:
- ``payout_periods`` has one row per merchant, currency and period: two schedulers racing,
  or one re-run after a crash, cannot make a second automatic payout for a period; a
  period with nothing to pay is recorded too (``payout`` null), so "none missed" is checkable.
- ``payouts_status_moves`` refuses an UPDATE that moves a payout outside the state machine
  (domain/payouts.py TRANSITIONS) or changes what it pays (amount, currency, merchant).
- ``failure_code`` is one of Stripe's; a failed payout has one and only a failed one has;
  a failed or canceled payout has its reversing balance transaction.
- the ledger kinds ``payout``, ``payout_paid``, ``payout_failure``, ``payout_cancel`` post
  once per payout (``UNIQUE (kind, source_id)`` of 0001).
"""

from alembic import op

revision = "money_out_payouts"
down_revision = "stripe_charges_charges"

FAILURE_CODES = ("account_closed", "account_frozen", "bank_account_restricted",
                 "bank_ownership_changed", "could_not_process", "debit_not_authorized",
                 "declined", "insufficient_funds", "invalid_account_number",
                 "incorrect_account_holder_name", "incorrect_account_holder_address",
                 "incorrect_account_holder_tax_id", "invalid_currency", "no_account",
                 "unsupported_card")
_CODES = ", ".join(f"'{c}'" for c in FAILURE_CODES)

OLD_KINDS = ("'authorization_hold', 'authorization_release', 'capture', 'refund', "
             "'refund_reversal', 'availability', 'dispute', 'dispute_reversal'")
NEW_KINDS = OLD_KINDS + ", 'payout', 'payout_paid', 'payout_failure', 'payout_cancel'"

UPGRADE = rf"""
CREATE TABLE payout_settings (
    merchant_id       text PRIMARY KEY REFERENCES merchants(id),
    interval          text NOT NULL DEFAULT 'daily'
                        CHECK (interval IN ('manual', 'daily', 'weekly', 'monthly')),
    weekly_anchor     text CHECK (weekly_anchor IN ('monday', 'tuesday', 'wednesday',
                        'thursday', 'friday', 'saturday', 'sunday')),
    monthly_anchor    integer CHECK (monthly_anchor BETWEEN 1 AND 31),
    delay_days        integer NOT NULL DEFAULT 2 CHECK (delay_days BETWEEN 0 AND 365),
    -- the scheduler's watermark: every period due up to this instant has its row
    scheduled_through bigint,
    CHECK ((interval = 'weekly') = (weekly_anchor IS NOT NULL)),
    CHECK ((interval = 'monthly') = (monthly_anchor IS NOT NULL))
);

CREATE TABLE payout_destinations (
    seq                  bigint GENERATED ALWAYS AS IDENTITY,
    id                   text PRIMARY KEY,                       -- ba_…
    merchant_id          text NOT NULL REFERENCES merchants(id),
    currency             text NOT NULL CHECK (currency ~ '^[a-z]{{3}}$'),
    country              text NOT NULL CHECK (country ~ '^[A-Z]{{2}}$'),
    account_holder_name  text NOT NULL CHECK (length(account_holder_name) BETWEEN 1 AND 140),
    iban                 text,
    routing_number       text,
    account_number       text,
    last4                text NOT NULL CHECK (length(last4) = 4),
    default_for_currency boolean NOT NULL DEFAULT true,
    metadata             jsonb NOT NULL DEFAULT '{{}}',
    created              bigint NOT NULL,
    CHECK ((iban IS NOT NULL) <> (routing_number IS NOT NULL AND account_number IS NOT NULL)),
    CHECK (iban IS NULL OR (routing_number IS NULL AND account_number IS NULL))
);
CREATE UNIQUE INDEX payout_destinations_default ON payout_destinations (merchant_id, currency)
    WHERE default_for_currency;

CREATE TABLE payouts (
    seq                         bigint GENERATED ALWAYS AS IDENTITY,
    id                          text PRIMARY KEY,                -- po_…
    merchant_id                 text NOT NULL,
    amount                      bigint NOT NULL CHECK (amount > 0),
    currency                    text NOT NULL CHECK (currency ~ '^[a-z]{{3}}$'),
    status                      text NOT NULL CHECK (status IN ('pending', 'in_transit',
                                  'paid', 'failed', 'canceled')),
    automatic                   boolean NOT NULL DEFAULT false,
    period_key                  text,
    description                 text,
    statement_descriptor        text,
    metadata                    jsonb NOT NULL DEFAULT '{{}}',
    destination                 text REFERENCES payout_destinations(id),
    failure_code                text CHECK (failure_code IN ({_CODES})),
    balance_transaction         text NOT NULL,
    failure_balance_transaction text,
    trace_id                    text,
    arrival_date                bigint NOT NULL,
    created                     bigint NOT NULL,
    -- the payouts worker: when it sends or asks the rail next (null: nothing left to do)
    next_check_at               timestamptz,
    tries                       integer NOT NULL DEFAULT 0,
    version                     integer NOT NULL DEFAULT 0,
    CHECK (automatic = (period_key IS NOT NULL)),
    CHECK ((status = 'failed') = (failure_code IS NOT NULL)),
    CHECK ((failure_balance_transaction IS NOT NULL) = (status IN ('failed', 'canceled')))
);
CREATE UNIQUE INDEX payouts_one_per_period ON payouts (merchant_id, currency, period_key)
    WHERE period_key IS NOT NULL;
CREATE INDEX payouts_merchant_seq ON payouts (merchant_id, seq);
CREATE INDEX payouts_merchant_arrival ON payouts (merchant_id, arrival_date);
CREATE INDEX payouts_due ON payouts (next_check_at) WHERE next_check_at IS NOT NULL;

CREATE TABLE payout_periods (
    merchant_id text NOT NULL,
    currency    text NOT NULL,
    period_key  text NOT NULL,
    payout      text REFERENCES payouts(id),                     -- null: nothing to pay
    created     bigint NOT NULL,
    PRIMARY KEY (merchant_id, currency, period_key)
);

CREATE FUNCTION kassa_payout_status_moves() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.amount <> OLD.amount OR NEW.currency <> OLD.currency
       OR NEW.merchant_id <> OLD.merchant_id THEN
        RAISE EXCEPTION 'payout %: amount, currency and merchant never change', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF NEW.status <> OLD.status AND NOT (
           (OLD.status = 'pending' AND NEW.status IN ('in_transit', 'failed', 'canceled'))
        OR (OLD.status = 'in_transit' AND NEW.status IN ('paid', 'failed'))
        OR (OLD.status = 'paid' AND NEW.status = 'failed')) THEN
        RAISE EXCEPTION 'payout %: % -> % is not a payout transition', OLD.id, OLD.status,
            NEW.status USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER payouts_status_moves BEFORE UPDATE ON payouts
    FOR EACH ROW EXECUTE FUNCTION kassa_payout_status_moves();

-- what a payout contains: GET /v1/balance_transactions?payout=po_…
ALTER TABLE balance_transactions ADD COLUMN payout text;
CREATE INDEX balance_transactions_payout ON balance_transactions (payout, seq)
    WHERE payout IS NOT NULL;

ALTER TABLE ledger_transactions DROP CONSTRAINT ledger_transactions_kind_check;
ALTER TABLE ledger_transactions ADD CONSTRAINT ledger_transactions_kind_check
    CHECK (kind IN ({NEW_KINDS})) NOT VALID;
ALTER TABLE ledger_transactions VALIDATE CONSTRAINT ledger_transactions_kind_check;
"""

DOWNGRADE = rf"""
ALTER TABLE ledger_transactions DROP CONSTRAINT ledger_transactions_kind_check;
ALTER TABLE ledger_transactions ADD CONSTRAINT ledger_transactions_kind_check
    CHECK (kind IN ({OLD_KINDS})) NOT VALID;
DROP INDEX balance_transactions_payout;
ALTER TABLE balance_transactions DROP COLUMN payout;
DROP TABLE payout_periods, payouts, payout_destinations, payout_settings;
DROP FUNCTION kassa_payout_status_moves();
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
