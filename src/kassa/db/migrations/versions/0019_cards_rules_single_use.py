"""Off-session attempts and single-use cards.

Revision ID: cards_rules_single_use
Revises: checkout_fixes_detached

- ``attempts.off_session``: the authorisation was made with the customer absent (a saved card
  charged by the merchant). Recovery repeats an attempt exactly as first sent, so the flag is
  the attempt's; a card that asks for 3-D Secure off-session is declined
  ``authentication_required`` (services/confirm.py), as Stripe does.
- ``kassa_vault.payment_methods.used_by``: the payment intent that first used a card not
  attached to a customer. Stripe lets such a card be used once: another intent, or attaching
  it afterwards, is refused (services/saved_cards.py, op ``use_payment_method``). The serving
  role may update the column (kassa/vault/roles.py). Cards used before this migration were
  never marked and stay reusable.
"""

from alembic import op

revision = "cards_rules_single_use"
down_revision = "checkout_fixes_detached"


def upgrade() -> None:
    op.execute("ALTER TABLE attempts ADD COLUMN off_session boolean NOT NULL DEFAULT false")
    op.execute("ALTER TABLE kassa_vault.payment_methods ADD COLUMN used_by text")


def downgrade() -> None:
    # kassa_apply names both columns: with no recorded hash, the previous release's
    # `kassa migrate` re-creates its own apply.sql
    op.execute("DELETE FROM kassa_sql_versions WHERE name = 'apply.sql'")
    op.execute("ALTER TABLE kassa_vault.payment_methods DROP COLUMN used_by")
    op.execute("ALTER TABLE attempts DROP COLUMN off_session")
