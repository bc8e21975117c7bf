"""When a converted dispute's withdrawal rule changed: the ledger transaction before which
the legacy amount is still correct.

Revision ID: payoutfix_dispute_share_cutover
Revises: reconfast_item_writes (re-chained after 0033 reconfast_item_writes)

A converted payment's chargeback takes its share of the converted capture
(domain/fx.dispute_share) plus the fee; before that rule it converted the withdrawn amount
alone (up to a minor unit more). ``kassa ledger verify`` accepts that legacy amount only
for a withdrawal posted before this migration ran (its ``ledger_transactions.id`` at most
``last_legacy_transaction``, the highest id then): the code with the new rule ships with
this migration, so every later withdrawal must follow it, and a regression to the old rule
is reported. A fresh database records 0 (no legacy withdrawal can exist). The downgrade
drops the record (the old verify accepts both amounts for every dispute).
"""

from alembic import op

revision = "payoutfix_dispute_share_cutover"
down_revision = "reconfast_item_writes"

UPGRADE = r"""
CREATE TABLE ledger_rule_cutovers (
    rule                    text PRIMARY KEY CHECK (rule IN ('dispute_share')),
    last_legacy_transaction bigint NOT NULL CHECK (last_legacy_transaction >= 0),
    recorded_at             timestamptz NOT NULL DEFAULT now()
);
-- no writer may post while the cutover is read: a withdrawal in flight lands on one side
LOCK TABLE ledger_transactions IN SHARE MODE;
INSERT INTO ledger_rule_cutovers (rule, last_legacy_transaction)
SELECT 'dispute_share', coalesce(max(id), 0) FROM ledger_transactions;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP TABLE ledger_rule_cutovers")
