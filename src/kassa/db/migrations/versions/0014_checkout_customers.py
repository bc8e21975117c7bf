"""Customers, the cards saved to them, and an intent's customer.

Revision ID: checkout_customers
Revises: money_out_payouts

- ``customers``: Stripe's Customer (email, name, phone, description, metadata,
  ``invoice_settings.default_payment_method``). Deleting one keeps the row (``deleted``) so
  intents and events that name it still resolve, as Stripe answers ``deleted: true``.
- ``kassa_vault.payment_methods.customer`` (the vault's non-secret table) names the customer
  a card is attached to; the serving role may change that column and the ones a merchant
  may update (billing details, metadata, expiry) and nothing else of the vault
  (kassa/vault/roles.py). The card number stays in ``card_secrets``, out of its reach.
- ``payment_intents.customer``: the customer an intent charges for (``setup_future_usage``
  attaches its card to them once it succeeds).

kassa_apply's insert_payment/update_payment carry ``customer`` (db/sql/apply.sql).
"""

from alembic import op

revision = "checkout_customers"
down_revision = "money_out_payouts"

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
    created          bigint NOT NULL
);
CREATE INDEX customers_by_merchant ON customers (merchant_id, seq DESC) WHERE NOT deleted;
CREATE INDEX customers_by_email ON customers (merchant_id, email, seq DESC) WHERE NOT deleted;

CREATE INDEX payment_methods_by_customer ON kassa_vault.payment_methods
    (merchant_id, customer, created DESC, id DESC) WHERE customer IS NOT NULL;

ALTER TABLE payment_intents ADD COLUMN customer text;
"""

DOWNGRADE = r"""
ALTER TABLE payment_intents DROP COLUMN customer;
DROP INDEX kassa_vault.payment_methods_by_customer;
DROP TABLE customers;
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute(DOWNGRADE)
