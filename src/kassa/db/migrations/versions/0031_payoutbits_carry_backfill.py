"""Backfill ``payout_carries`` for automatic payouts made before the carry existed.

Revision ID: payoutbits_carry_backfill
Revises: payoutbits_sealed_numbers

Before migration money_reconciliation (0016) an automatic payout paid ``min(itemised,
available)`` of a period and forgot the rest: what it itemised but could not pay (a refund
after the cutoff, payout-multiple rounding) stayed in the merchant's available balance with
no unpaid balance transaction left to carry it, so no later payout paid it. 0016 added the
carry but started every merchant at none, and a period made since overwrote the row with
its own carry, so the money forgotten before is still stranded.

The carry is defined by the invariant automatic payouts keep (domain/payout_amounts.py):

    available balance = carried + Σ net of available balance transactions no payout contains

(an automatic payout's own debit excluded). So for every merchant and currency that has had
an automatic payout period, the carry is set to ``available − Σ unpaid`` where that is above
the row's value: for data written since 0016 the two are equal and nothing changes; for
older data the difference is exactly what the old payouts itemised and did not pay. A
negative difference (a balance below what its unpaid transactions add up to) needs no
carry: those transactions are still itemised, and a period pays at most the balance.
Periods' audit columns (itemized, carried_in, carried) of old periods stay NULL: they were
not recorded then.

Schedulers may run during the migration: ``payout_periods`` is locked first (a scheduler's
first write claims a period there), so a pass either committed before the backfill reads
the balances, or waits until the backfill committed and then reads its carry.

The downgrade keeps the rows: they are money owed (0016's downgrade refuses while any is).
"""

from alembic import op

revision = "payoutbits_carry_backfill"
down_revision = "payoutbits_sealed_numbers"

# (``\:`` keeps SQLAlchemy's text() from reading ``:available`` as a bind parameter)
UPGRADE = r"""
LOCK TABLE payout_periods IN EXCLUSIVE MODE;
LOCK TABLE payout_carries IN EXCLUSIVE MODE;
WITH pairs AS (SELECT DISTINCT merchant_id, currency FROM payout_periods),
owed AS (
    SELECT p.merchant_id, p.currency,
        coalesce((SELECT -sum(e.amount) FROM ledger_entries e
                  WHERE e.account = 'merchant:' || p.merchant_id || '\:available'
                  AND e.currency = p.currency AND e.layer = 'posted'), 0)
      - coalesce((SELECT sum(b.net) FROM balance_transactions b
                  WHERE b.merchant_id = p.merchant_id AND b.currency = p.currency
                  AND b.status = 'available' AND b.payout IS NULL
                  AND NOT (b.type = 'payout' AND EXISTS (
                      SELECT 1 FROM payouts po WHERE po.id = b.source AND po.automatic))),
                 0) AS carried
    FROM pairs p)
INSERT INTO payout_carries (merchant_id, currency, carried)
SELECT merchant_id, currency, carried FROM owed WHERE carried > 0
ON CONFLICT (merchant_id, currency)
    DO UPDATE SET carried = greatest(payout_carries.carried, EXCLUDED.carried);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    pass  # the carries are owed money, not schema: they stay
