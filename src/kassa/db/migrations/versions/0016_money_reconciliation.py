"""Money-out completion: payout carries, payouts held for review, per-merchant settlement
delay at capture, and reconciliation of PSP settlement reports.

Revision ID: money_reconciliation
Revises: checkout_customers (re-chained after the perf and checkout branches merged)

What protects money here rather than in Python alone:
- ``payout_carries``: what automatic payouts itemised but did not pay, per merchant and
  currency, never negative (domain/payout_amounts.py); ``payout_periods`` keeps each period's
  sums for audit.
- ``payouts.review_reason``: a payout the rail answered about with another amount or currency
  is held (its worker stops) until an operator resolves it; it is never marked paid or failed
  on such an answer.
- ``reconciliation_runs`` unique on (psp, file hash): importing the same file twice makes
  one run; ``reconciliation_items`` unique on (run, row number) and, for a settled PSP
  reference, once across runs (``reconciliation_settled``), and for a matched kassa object,
  once per category across runs (``reconciliation_settled_object``, whatever the reference
  reads in each file): a settlement row is posted once.
- the ledger kind ``settlement`` (Dr bank:cash net, Dr expense:psp_fees / Cr psp receivable
  gross), once per run and currency (``UNIQUE (kind, source_id)`` of 0001, source = run:ccy).
- the downgrade refuses while a settlement is posted, a carry is owed or a payout is held.
"""

from alembic import op

revision = "money_reconciliation"
down_revision = "checkout_customers"

OLD_KINDS = ("'authorization_hold', 'authorization_release', 'capture', 'refund', "
             "'refund_reversal', 'availability', 'dispute', 'dispute_reversal', "
             "'payout', 'payout_paid', 'payout_failure', 'payout_cancel'")
NEW_KINDS = OLD_KINDS + ", 'settlement'"

DISCREPANCY_KINDS = ("'missing_in_kassa', 'missing_at_psp', 'amount_mismatch', "
                     "'fee_mismatch', 'currency_mismatch', 'status_mismatch'")

UPGRADE = rf"""
CREATE TABLE payout_carries (
    merchant_id text NOT NULL,
    currency    text NOT NULL,
    carried     bigint NOT NULL CHECK (carried >= 0),
    PRIMARY KEY (merchant_id, currency)
);
ALTER TABLE payout_periods ADD COLUMN itemized bigint, ADD COLUMN carried_in bigint,
    ADD COLUMN carried bigint CHECK (carried >= 0);

ALTER TABLE payouts ADD COLUMN review_reason text, ADD COLUMN review_resolution text;

CREATE TABLE reconciliation_runs (
    seq           bigint GENERATED ALWAYS AS IDENTITY,
    id            text PRIMARY KEY,                              -- recon_…
    psp           text NOT NULL,
    format        text NOT NULL,
    source_name   text NOT NULL,
    file_sha256   text NOT NULL CHECK (file_sha256 ~ '^[0-9a-f]{{64}}$'),
    status        text NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    rows_read     bigint NOT NULL DEFAULT 0,
    rows_matched  bigint NOT NULL DEFAULT 0,
    discrepancies bigint NOT NULL DEFAULT 0,
    failure       text,
    covers_from   bigint,                     -- the UTC days the report's rows fall on
    covers_to     bigint,
    created       bigint NOT NULL,
    completed_at  bigint,
    UNIQUE (psp, file_sha256)
);

-- the rows of a report, staged then matched by set-based SQL (reconciliation.py)
CREATE TABLE reconciliation_items (
    run_id        text NOT NULL REFERENCES reconciliation_runs(id),
    row_number    bigint NOT NULL,
    category      text NOT NULL CHECK (category IN ('charge', 'refund', 'chargeback', 'fee')),
    psp_reference text,
    kassa_reference text,
    gross         bigint NOT NULL,
    fee           bigint NOT NULL,
    currency      text NOT NULL,
    psp_status    text,
    created       bigint,
    expected_fee  bigint,                     -- the PSP's contract fee (null: not checked)
    merchant_id   text,
    matched       text,                       -- kassa's object (pi_…, re_…, dp_…)
    kassa_amount  bigint,
    kassa_currency text,
    kassa_status  text,
    problem       text CHECK (problem IN ({DISCREPANCY_KINDS})),
    posted        boolean NOT NULL DEFAULT false,
    PRIMARY KEY (run_id, row_number),
    -- posted: agreed, or only the fee differs, or kassa is behind the PSP (processing)
    CHECK (NOT posted OR problem IS NULL OR problem IN ('fee_mismatch', 'status_mismatch'))
);
CREATE INDEX reconciliation_items_matched ON reconciliation_items (matched)
    WHERE matched IS NOT NULL;
CREATE UNIQUE INDEX reconciliation_settled ON reconciliation_items (category, psp_reference)
    WHERE posted;
-- a kassa object's movement is posted once, whatever the PSP's reference reads in each file
CREATE UNIQUE INDEX reconciliation_settled_object ON reconciliation_items (category, matched)
    WHERE posted AND matched IS NOT NULL;

CREATE TABLE reconciliation_discrepancies (
    seq           bigint GENERATED ALWAYS AS IDENTITY,
    id            text PRIMARY KEY,                              -- rdisc_…
    run_id        text NOT NULL REFERENCES reconciliation_runs(id),
    row_number    bigint,                     -- null: kassa has it, the report does not
    kind          text NOT NULL CHECK (kind IN ({DISCREPANCY_KINDS})),
    category      text NOT NULL,
    merchant_id   text,
    psp_reference text,
    kassa_object  text,
    currency      text,
    kassa_amount  bigint,
    psp_amount    bigint,
    kassa_value   text,
    psp_value     text,
    resolution    text NOT NULL CHECK (resolution IN ('open', 'auto_resolved', 'resolved')),
    resolution_how text,
    resolved_by   text,
    resolved_at   bigint,
    created       bigint NOT NULL,
    CHECK ((resolution = 'open') = (resolved_at IS NULL)),
    CHECK (resolution <> 'resolved' OR (resolved_by IS NOT NULL AND resolution_how IS NOT NULL))
);
CREATE INDEX reconciliation_discrepancies_run ON reconciliation_discrepancies (run_id, seq);

ALTER TABLE ledger_transactions DROP CONSTRAINT ledger_transactions_kind_check;
ALTER TABLE ledger_transactions ADD CONSTRAINT ledger_transactions_kind_check
    CHECK (kind IN ({NEW_KINDS})) NOT VALID;
ALTER TABLE ledger_transactions VALIDATE CONSTRAINT ledger_transactions_kind_check;
"""

# a downgrade would drop money the ledger or the payout scheduler still counts on: refused
# while a settlement is posted (the old kind check cannot hold it, and its run's items are
# what proves it), a carry is owed to a merchant, or a payout is held for review
REFUSE_DOWNGRADE = r"""
DO $$
DECLARE
    settled bigint := (SELECT count(*) FROM ledger_transactions WHERE kind = 'settlement');
    carried bigint := (SELECT count(*) FROM payout_carries WHERE carried > 0);
    held bigint := (SELECT count(*) FROM payouts WHERE review_reason IS NOT NULL);
BEGIN
    IF settled > 0 OR carried > 0 OR held > 0 THEN
        RAISE EXCEPTION 'money_reconciliation downgrade refused: % settlement transaction(s),'
            ' % payout carry(ies) owed, % payout(s) held for review would be lost',
            settled, carried, held;
    END IF;
END $$;
"""

DOWNGRADE = REFUSE_DOWNGRADE + rf"""
ALTER TABLE ledger_transactions DROP CONSTRAINT ledger_transactions_kind_check;
ALTER TABLE ledger_transactions ADD CONSTRAINT ledger_transactions_kind_check
    CHECK (kind IN ({OLD_KINDS})) NOT VALID;
DROP TABLE reconciliation_discrepancies, reconciliation_items, reconciliation_runs;
ALTER TABLE payouts DROP COLUMN review_reason, DROP COLUMN review_resolution;
ALTER TABLE payout_periods DROP COLUMN itemized, DROP COLUMN carried_in, DROP COLUMN carried;
DROP TABLE payout_carries;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
