"""Settlement report rows of a won dispute's reversal (category ``chargeback_reversal``).

Revision ID: payoutbits_chargeback_reversals
Revises: payoutbits_carry_backfill

A won chargeback is two movements at the PSP: the chargeback on the day the issuer took the
money, its reversal on the day the merchant won (the amount back, the chargeback fee back).
Each is a report row matched to the dispute (domain/reconciliation.py); the reversal needs
its own category, so a dispute's chargeback and reversal are each settled once
(``reconciliation_settled_object`` is unique per category and object). The downgrade is
refused while a reversal row exists: the old schema cannot hold it.
"""

from alembic import op

revision = "payoutbits_chargeback_reversals"
down_revision = "payoutbits_carry_backfill"

UPGRADE = r"""
ALTER TABLE reconciliation_items DROP CONSTRAINT reconciliation_items_category_check;
ALTER TABLE reconciliation_items ADD CONSTRAINT reconciliation_items_category_check
    CHECK (category IN ('charge', 'refund', 'chargeback', 'chargeback_reversal', 'fee'));
"""

DOWNGRADE = r"""
DO $$
DECLARE
    reversals bigint := (SELECT count(*) FROM reconciliation_items
                         WHERE category = 'chargeback_reversal');
BEGIN
    IF reversals > 0 THEN
        RAISE EXCEPTION 'payoutbits_chargeback_reversals downgrade refused: % chargeback'
            ' reversal row(s) would not fit the old categories', reversals;
    END IF;
END $$;
ALTER TABLE reconciliation_items DROP CONSTRAINT reconciliation_items_category_check;
ALTER TABLE reconciliation_items ADD CONSTRAINT reconciliation_items_category_check
    CHECK (category IN ('charge', 'refund', 'chargeback', 'fee'));
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
