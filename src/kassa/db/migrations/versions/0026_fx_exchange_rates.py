"""Multi-currency: exchange rates, settlement currencies, and the rate each conversion used.

Revision ID: fx_exchange_rates
Revises: psp_account_bindings

- ``fx_rates``: one row per rate kassa was given (``kassa fx load FILE.csv``, ``kassa fx
  pull``): 1 ``base`` = ``rate`` ``quote``, an exact NUMERIC (never a float), with its
  ``source`` and the provider's ``as_of``; ``loaded_at`` is when kassa stored it. Rows are
  never updated: the same (base, quote, source, as_of) loaded twice is one row.
- ``merchants.settlement_currency``: the currency the merchant's balance is kept in (null:
  each payment settles in its own currency, as before). Shown as the account's
  ``default_currency``.
- ``payment_intents``: ``settlement_currency``, ``exchange_rate`` and ``fx_rate_id`` fixed
  at confirmation when the merchant settles in another currency (all null otherwise).
- ``balance_transactions.exchange_rate`` (Stripe's field; null when nothing was converted)
  and ``ledger_transactions.exchange_rate``: the rate of the conversion a transaction's
  ``fx:<ccy>`` trading entries make (`kassa ledger verify` checks the entries against it).
- The downgrade refuses while a converted payment or ledger transaction exists: dropping
  the rate would leave trading entries nobody can check.
"""

from alembic import op

revision = "fx_exchange_rates"
down_revision = "psp_account_bindings"

UPGRADE = r"""
CREATE TABLE fx_rates (
    id         text PRIMARY KEY,
    base       text NOT NULL CHECK (base ~ '^[a-z]{3}$'),
    quote      text NOT NULL CHECK (quote ~ '^[a-z]{3}$'),
    rate       numeric NOT NULL CHECK (rate > 0),
    source     text NOT NULL CHECK (length(source) BETWEEN 1 AND 200),
    as_of      bigint NOT NULL,
    loaded_at  bigint NOT NULL,
    CHECK (base <> quote),
    UNIQUE (base, quote, source, as_of)
);
CREATE INDEX fx_rates_latest ON fx_rates (base, quote, as_of DESC);

ALTER TABLE merchants ADD COLUMN settlement_currency text
    CHECK (settlement_currency ~ '^[a-z]{3}$');
ALTER TABLE payment_intents ADD COLUMN settlement_currency text
    CHECK (settlement_currency ~ '^[a-z]{3}$'),
    ADD COLUMN exchange_rate numeric CHECK (exchange_rate > 0),
    ADD COLUMN fx_rate_id text REFERENCES fx_rates(id),
    ADD CONSTRAINT payment_intents_fx_complete CHECK (
        (settlement_currency IS NULL) = (exchange_rate IS NULL)
        AND (exchange_rate IS NULL) = (fx_rate_id IS NULL)
        AND (settlement_currency IS NULL OR settlement_currency <> currency));
ALTER TABLE balance_transactions ADD COLUMN exchange_rate numeric
    CHECK (exchange_rate > 0);
ALTER TABLE ledger_transactions ADD COLUMN exchange_rate numeric
    CHECK (exchange_rate > 0);
"""

DOWNGRADE = r"""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM ledger_transactions WHERE exchange_rate IS NOT NULL)
       OR EXISTS (SELECT 1 FROM payment_intents WHERE exchange_rate IS NOT NULL) THEN
        RAISE EXCEPTION 'fx_exchange_rates downgrade refused: converted payments exist';
    END IF;
END $$;
ALTER TABLE ledger_transactions DROP COLUMN exchange_rate;
ALTER TABLE balance_transactions DROP COLUMN exchange_rate;
ALTER TABLE payment_intents DROP CONSTRAINT payment_intents_fx_complete,
    DROP COLUMN fx_rate_id, DROP COLUMN exchange_rate, DROP COLUMN settlement_currency;
ALTER TABLE merchants DROP COLUMN settlement_currency;
DROP TABLE fx_rates;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
