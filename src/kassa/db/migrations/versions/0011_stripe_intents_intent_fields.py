"""The PaymentIntent fields Stripe integrations send and read back, and refund updates.

Revision ID: stripe_intents_intent_fields
Revises: vault_card_vault

- ``client_secret`` (``pi_…_secret_…``, unguessable; existing intents get one here, and
  kassa_apply gives one to an intent an older replica inserts): what a publishable key
  retrieves and confirms with. Null only for a row written by hand; no key matches it.
- ``confirmation_method`` (automatic | manual), ``capture_method`` may be
  ``automatic_async`` (kept as given; it captures like automatic).
- ``receipt_email``, ``statement_descriptor``, ``statement_descriptor_suffix``,
  ``setup_future_usage``, ``shipping``, ``automatic_payment_methods``,
  ``payment_method_options`` (``[card][capture_method]`` overrides the capture method).

kassa_apply's insert_payment/update_payment carry the new columns and update_refund its
metadata in db/sql/apply.sql (re-created after the migrations reach head).
"""

from importlib import import_module

from alembic import op

revision = "stripe_intents_intent_fields"
down_revision = "vault_card_vault"

SCHEMA = r"""
ALTER TABLE payment_intents
    ADD COLUMN client_secret text,
    ADD COLUMN confirmation_method text NOT NULL DEFAULT 'automatic'
        CHECK (confirmation_method IN ('automatic', 'manual')),
    ADD COLUMN receipt_email text,
    ADD COLUMN statement_descriptor text CHECK (length(statement_descriptor) <= 22),
    ADD COLUMN statement_descriptor_suffix text
        CHECK (length(statement_descriptor_suffix) <= 22),
    ADD COLUMN setup_future_usage text
        CHECK (setup_future_usage IN ('on_session', 'off_session')),
    ADD COLUMN shipping jsonb,
    ADD COLUMN automatic_payment_methods jsonb,
    ADD COLUMN payment_method_options jsonb;
-- 32 random bytes from gen_random_uuid's CSPRNG, hex: unguessable like the new ones
UPDATE payment_intents SET client_secret = id || '_secret_'
    || replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', '');
ALTER TABLE payment_intents DROP CONSTRAINT payment_intents_capture_method_check;
ALTER TABLE payment_intents ADD CONSTRAINT payment_intents_capture_method_check
    CHECK (capture_method IN ('automatic', 'automatic_async', 'manual'));
"""

DOWNGRADE_SCHEMA = r"""
UPDATE payment_intents SET capture_method = 'automatic'
    WHERE capture_method = 'automatic_async';
ALTER TABLE payment_intents DROP CONSTRAINT payment_intents_capture_method_check;
ALTER TABLE payment_intents ADD CONSTRAINT payment_intents_capture_method_check
    CHECK (capture_method IN ('automatic', 'manual'));
ALTER TABLE payment_intents DROP COLUMN client_secret, DROP COLUMN confirmation_method,
    DROP COLUMN receipt_email, DROP COLUMN statement_descriptor,
    DROP COLUMN statement_descriptor_suffix, DROP COLUMN setup_future_usage,
    DROP COLUMN shipping, DROP COLUMN automatic_payment_methods,
    DROP COLUMN payment_method_options;
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    # kassa_apply as it was before these columns (0008's body, which house_db_sql_versions'
    # apply.sql kept), and no recorded hash: the next upgrade to head re-creates apply.sql
    previous = import_module("kassa.db.migrations.versions.0008_attempts_watched")
    op.execute(previous.UPGRADE)
    op.execute("DELETE FROM kassa_sql_versions WHERE name = 'apply.sql'")
    op.execute(DOWNGRADE_SCHEMA)
