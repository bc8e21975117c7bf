"""Disputes remember what their chargeback withdrew: at most the disputed amount, and less
when refunds came first (domain/disputes.py); a won dispute returns exactly that.

Revision ID: 0007_dispute_withdrawn
Revises: 0006
"""

from alembic import op

revision = "0007_dispute_withdrawn"
down_revision = "0006"

# Until now a chargeback always withdrew the whole amount, so existing rows are backfilled
# with it. The CHECKs keep money following the status: a withdrawal has an amount exactly
# when it has a balance transaction, and never more than was disputed.
UPGRADE = r"""
ALTER TABLE disputes ADD COLUMN amount_withdrawn bigint;
UPDATE disputes SET amount_withdrawn = amount WHERE withdrawal_balance_transaction IS NOT NULL;
ALTER TABLE disputes
    ADD CONSTRAINT disputes_amount_withdrawn_with_withdrawal
        CHECK ((amount_withdrawn IS NOT NULL) = (withdrawal_balance_transaction IS NOT NULL)),
    ADD CONSTRAINT disputes_amount_withdrawn_bounded
        CHECK (amount_withdrawn BETWEEN 0 AND amount);
"""

DOWNGRADE = r"""
ALTER TABLE disputes DROP COLUMN amount_withdrawn;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
