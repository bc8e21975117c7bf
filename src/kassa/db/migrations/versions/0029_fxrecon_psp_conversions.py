"""Settlement rows the PSP converted: what it settled in another currency, and its rate.

Revision ID: fxrecon_psp_conversions
Revises: jp_payout_destinations

A PSP that charged the customer in one currency and paid out in another (Adyen's Gross
Currency ≠ Net Currency, Stripe's customer_facing_currency ≠ currency, a simulator account
with a settlement currency) reports both sides. ``reconciliation_items`` keeps the
presentment side where it was (``gross``, ``currency``: what kassa's receivable holds and is
matched on) and adds ``settlement_currency``, ``settlement_gross`` (minor units, same sign as
``gross``) and ``exchange_rate`` (the PSP's: 1 presentment = rate settlement); ``fee`` of such
a row is in the settlement currency. All three are set or none, the settlement currency is
another than the presentment one, the rate is positive. ``expected_settled`` (settlement
currency, minor units) is set on a converted row that is an ``amount_mismatch`` on the
settled side: what the PSP should have settled (the gross at its rate, or at kassa's own
rate when the PSP's is outside the band); such a row is not posted. The downgrade is
refused while a converted row exists: the old schema would read its fee in the wrong
currency.
"""

from alembic import op

revision = "fxrecon_psp_conversions"
down_revision = "jp_payout_destinations"

UPGRADE = r"""
ALTER TABLE reconciliation_items ADD COLUMN settlement_currency text,
    ADD COLUMN settlement_gross bigint,
    ADD COLUMN exchange_rate numeric CHECK (exchange_rate > 0),
    ADD COLUMN expected_settled bigint,
    ADD CONSTRAINT reconciliation_items_conversion CHECK (
        (settlement_currency IS NULL) = (settlement_gross IS NULL)
        AND (settlement_gross IS NULL) = (exchange_rate IS NULL)
        AND settlement_currency IS DISTINCT FROM currency
        AND sign(settlement_gross) = sign(gross)
        AND (expected_settled IS NULL OR (settlement_currency IS NOT NULL
             AND NOT posted)));
"""

DOWNGRADE = r"""
DO $$
DECLARE
    converted bigint := (SELECT count(*) FROM reconciliation_items
                         WHERE settlement_currency IS NOT NULL);
BEGIN
    IF converted > 0 THEN
        RAISE EXCEPTION 'fxrecon_psp_conversions downgrade refused: % settlement row(s) the'
            ' PSP converted would lose their settlement currency', converted;
    END IF;
END $$;
ALTER TABLE reconciliation_items DROP CONSTRAINT reconciliation_items_conversion,
    DROP COLUMN expected_settled, DROP COLUMN exchange_rate, DROP COLUMN settlement_gross,
    DROP COLUMN settlement_currency;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
