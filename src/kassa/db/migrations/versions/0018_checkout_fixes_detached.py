"""A card detached from its customer stays detached: ``kassa_vault.payment_methods.detached``.

Revision ID: checkout_fixes_detached
Revises: routing_routing_configs

Stripe refuses to attach (or charge for a customer) a PaymentMethod that was detached from a
customer: otherwise a card detached from A (or left when A was deleted) could be attached to
B and charged off-session for B. Detach and customer deletion set ``detached``; attach, the
``save_payment_method`` op (db/sql/apply.sql) and an intent's check refuse such a card
(services/saved_cards.py). The serving role may update the column (kassa/vault/roles.py).

Cards detached before this migration are told apart from never-attached ones by their
``payment_method.detached`` events and marked here; cards left when a customer was deleted
before it (no event names them) cannot be told apart and stay unmarked.
"""

from alembic import op

revision = "checkout_fixes_detached"
down_revision = "routing_routing_configs"

UPGRADE = r"""
ALTER TABLE kassa_vault.payment_methods ADD COLUMN detached boolean NOT NULL DEFAULT false;
UPDATE kassa_vault.payment_methods p SET detached = true
    WHERE p.customer IS NULL AND EXISTS (
        SELECT 1 FROM events e WHERE e.object_id = p.id AND e.merchant_id = p.merchant_id
        AND e.type = 'payment_method.detached');
"""

DOWNGRADE = r"""
ALTER TABLE kassa_vault.payment_methods DROP COLUMN detached;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    # kassa_apply's save_payment_method names the column: with no recorded hash, the
    # previous release's `kassa migrate` re-creates its own apply.sql
    op.execute("DELETE FROM kassa_sql_versions WHERE name = 'apply.sql'")
    op.execute(DOWNGRADE)
