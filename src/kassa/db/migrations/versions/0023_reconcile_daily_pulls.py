"""The scheduled daily pull of each PSP account's settlement report.

Revision ID: reconcile_daily_pulls
Revises: psp_accounts_merchant_accounts

``reconciliation_pulls`` has one row per PSP account and report day (the primary key): a
worker claims the day by inserting it (or by taking over a failed try whose retry time has
come, or a claim whose lease ran out: its worker died), downloads the report with no
transaction open, and marks the day imported in the import's own transaction, only while it
still holds the claim. So two pull workers racing make one run per account and day, never
two, and a day missed during downtime is a row that does not exist yet (caught up).
"""

from alembic import op

revision = "reconcile_daily_pulls"
down_revision = "psp_accounts_merchant_accounts"


def upgrade() -> None:
    op.execute("""
CREATE TABLE reconciliation_pulls (
    psp          text NOT NULL,                -- the PSP account (as attempts.psp names it)
    report_date  date NOT NULL,                -- the UTC day the report covers
    status       text NOT NULL CHECK (status IN ('claimed', 'imported', 'failed')),
    claimed_by   text NOT NULL,                -- the worker holding (or that held) the claim
    tries        integer NOT NULL DEFAULT 1 CHECK (tries >= 1),
    lease_until  bigint NOT NULL,              -- claimed: another worker may take over after
    retry_at     bigint,                       -- failed: the next try not before
    run_id       text REFERENCES reconciliation_runs(id),
    failure      text,
    created      bigint NOT NULL,
    completed_at bigint,
    PRIMARY KEY (psp, report_date),
    CHECK ((status = 'imported') = (run_id IS NOT NULL)),
    CHECK (status <> 'failed' OR (retry_at IS NOT NULL AND failure IS NOT NULL))
)""")
    op.execute("CREATE INDEX reconciliation_pulls_run ON reconciliation_pulls (run_id)")


def downgrade() -> None:
    op.execute("DROP TABLE reconciliation_pulls")
