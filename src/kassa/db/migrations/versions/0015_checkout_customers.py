"""Customers, the cards saved to them, and an intent's customer.

Revision ID: checkout_customers
Revises: perf_unused_indexes

- ``customers``: Stripe's Customer (email, name, phone, description, metadata,
  ``invoice_settings.default_payment_method``). Deleting one keeps the row (``deleted``) so
  intents and events that name it still resolve, as Stripe answers ``deleted: true``.
- ``kassa_vault.payment_methods.customer`` (the vault's non-secret table) names the customer
  a card is attached to; the serving role may change that column and the ones a merchant
  may update (billing details, metadata, expiry) and nothing else of the vault
  (kassa/vault/roles.py). The card number stays in ``card_secrets``, out of its reach.
- ``payment_intents.customer``: the customer an intent charges for (``setup_future_usage``
  attaches its card to them once it succeeds).
- Both ``customer`` columns are foreign keys to (id, merchant_id): a card or an intent can
  name only a customer of its own merchant.

kassa_apply's insert_payment/update_payment carry ``customer`` (db/sql/apply.sql).
"""

from alembic import op

revision = "checkout_customers"
down_revision = "perf_unused_indexes"

SCHEMA = r"""
CREATE TABLE customers (
    seq              bigserial UNIQUE,
    id               text PRIMARY KEY,
    merchant_id      text NOT NULL REFERENCES merchants(id),
    email            text CHECK (length(email) <= 512),
    name             text CHECK (length(name) <= 256),
    phone            text CHECK (length(phone) <= 20),
    description      text CHECK (length(description) <= 350),
    metadata         jsonb NOT NULL DEFAULT '{}',
    default_payment_method text,
    deleted          boolean NOT NULL DEFAULT false,
    livemode         boolean NOT NULL DEFAULT false,
    created          bigint NOT NULL,
    UNIQUE (id, merchant_id)  -- what the foreign keys below name: a customer of that merchant
);
CREATE INDEX customers_by_merchant ON customers (merchant_id, seq DESC) WHERE NOT deleted;
CREATE INDEX customers_by_email ON customers (merchant_id, email, seq DESC) WHERE NOT deleted;

CREATE INDEX payment_methods_by_customer ON kassa_vault.payment_methods
    (merchant_id, customer, created DESC, id DESC) WHERE customer IS NOT NULL;
-- a card belongs only to a customer of its own merchant (rows are never deleted: a deleted
-- customer is marked, its cards detached)
ALTER TABLE kassa_vault.payment_methods ADD CONSTRAINT payment_methods_customer_fk
    FOREIGN KEY (customer, merchant_id) REFERENCES customers (id, merchant_id);

ALTER TABLE payment_intents ADD COLUMN customer text;
ALTER TABLE payment_intents ADD CONSTRAINT payment_intents_customer_fk
    FOREIGN KEY (customer, merchant_id) REFERENCES customers (id, merchant_id);
"""

DOWNGRADE = r"""
ALTER TABLE payment_intents DROP COLUMN customer;
ALTER TABLE kassa_vault.payment_methods DROP CONSTRAINT payment_methods_customer_fk;
DROP INDEX kassa_vault.payment_methods_by_customer;
DROP TABLE customers;
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    # kassa_apply names the intent's customer: with no recorded hash, the previous release's
    # `kassa migrate` re-creates its own apply.sql (versioned migrations never define it)
    op.execute("DELETE FROM kassa_sql_versions WHERE name = 'apply.sql'")
    op.execute(DOWNGRADE)
