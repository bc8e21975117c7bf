"""Charges: what each authorisation attempt (a ``ch_…`` attempt) showed of the card when it
was made, so the charge object never depends on the payment method staying as it was.

Revision ID: stripe_charges_charges
Revises: stripe_intents_intent_fields

- ``charges``: one row per authorisation attempt, written in the attempt's own step 1
  (kassa_apply's ``insert_charge``, in db/sql/apply.sql): the payment method, the card's
  public facts (brand, last4, expiry, funding, country), billing details, and the random
  token of its receipt page.
  Everything that changes (status, captured and refunded amounts, outcome) is read from
  the attempt, the payment, refunds and balance transactions: one truth each.
- ``balance_transactions_source``: a charge's balance transaction is found by its source.

Authorisation attempts made before it get their row here (card unknown: null).
"""

from alembic import op

revision = "stripe_charges_charges"
down_revision = "stripe_intents_intent_fields"

SCHEMA = r"""
CREATE TABLE charges (
    seq               bigint GENERATED ALWAYS AS IDENTITY,
    id                text PRIMARY KEY,            -- the authorisation attempt's id (ch_…)
    merchant_id       text NOT NULL,
    payment_intent_id text NOT NULL,
    payment_method    text,
    card              jsonb,                       -- brand, last4, exp_month, exp_year, …
    billing_details   jsonb,
    receipt_token     text NOT NULL CHECK (length(receipt_token) >= 24),
    created           bigint NOT NULL
);
CREATE INDEX charges_merchant_seq ON charges (merchant_id, seq);
CREATE INDEX charges_payment ON charges (payment_intent_id);
CREATE INDEX balance_transactions_source ON balance_transactions (source);
-- attempts made before this revision: their card was not kept (null, not guessed); the
-- payment method is the payment's when the attempt is its latest
INSERT INTO charges (id, merchant_id, payment_intent_id, payment_method, receipt_token,
                     created)
SELECT a.id, a.merchant_id, a.payment_intent_id,
       CASE WHEN p.latest_charge = a.id THEN p.payment_method END,
       replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''),
       extract(epoch FROM a.created_at)::bigint
FROM attempts a JOIN payment_intents p ON p.id = a.payment_intent_id
WHERE a.operation = 'authorize' ORDER BY a.created_at, a.id;
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute("DROP INDEX balance_transactions_source; DROP TABLE charges;")
