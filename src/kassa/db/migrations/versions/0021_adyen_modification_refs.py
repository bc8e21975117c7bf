"""Asynchronous modifications matched by the PSP's own reference, and a capture the scheme
refused after it was booked.

Revision ID: adyen_modification_refs
Revises: vault_jsonb_objects

- ``attempts.operation_reference``: the PSP's id of the capture, cancel or refund itself
  (Adyen answers each modification ``received`` with its OWN pspReference). Unique per PSP
  (a partial index: only modifications carry one), so an inbound CAPTURE / CANCELLATION /
  REFUND(_FAILED) notification finds its attempt by one index probe, not by the echoed
  merchantReference alone.
- ``payment_intents.hold_ref``: the authorisation hold the ledger holds now when it is not
  the charge's own: a capture the scheme refused after kassa booked it (Adyen's
  CAPTURE_FAILED after CAPTURE) is reversed and, while the authorisation is still valid,
  its hold is posted again under the refused capture's attempt. The next capture or
  release resolves that hold (the ledger's "a hold is resolved once" index is per hold).
- ledger kind ``capture_reversal``: the reversing transaction of such a capture (new
  entries, never an edit of the capture's).
- the downgrade refuses while a capture reversal is posted (the older code could not
  explain those entries).
"""

from alembic import op

revision = "adyen_modification_refs"
down_revision = "vault_jsonb_objects"

OLD_KINDS = ("'authorization_hold', 'authorization_release', 'capture', 'refund', "
             "'refund_reversal', 'availability', 'dispute', 'dispute_reversal', "
             "'payout', 'payout_paid', 'payout_failure', 'payout_cancel', 'settlement'")
NEW_KINDS = OLD_KINDS + ", 'capture_reversal'"


def upgrade() -> None:
    op.execute("ALTER TABLE attempts ADD COLUMN operation_reference text")
    op.execute("CREATE UNIQUE INDEX attempts_operation_reference ON attempts"
               " (psp, operation_reference) WHERE operation_reference IS NOT NULL")
    op.execute("ALTER TABLE payment_intents ADD COLUMN hold_ref text")
    op.execute(f"""
ALTER TABLE ledger_transactions DROP CONSTRAINT ledger_transactions_kind_check;
ALTER TABLE ledger_transactions ADD CONSTRAINT ledger_transactions_kind_check
    CHECK (kind IN ({NEW_KINDS})) NOT VALID;
ALTER TABLE ledger_transactions VALIDATE CONSTRAINT ledger_transactions_kind_check;
""")


def downgrade() -> None:
    op.execute("""
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM ledger_transactions WHERE kind = 'capture_reversal') THEN
        RAISE EXCEPTION 'capture reversals are posted; the previous release cannot read them';
    END IF;
END $$;
""")
    # kassa_apply names the new columns: with no recorded hash, the previous release's
    # `kassa migrate` re-creates its own apply.sql
    op.execute("DELETE FROM kassa_sql_versions WHERE name = 'apply.sql'")
    op.execute(f"""
ALTER TABLE ledger_transactions DROP CONSTRAINT ledger_transactions_kind_check;
ALTER TABLE ledger_transactions ADD CONSTRAINT ledger_transactions_kind_check
    CHECK (kind IN ({OLD_KINDS})) NOT VALID;
ALTER TABLE ledger_transactions VALIDATE CONSTRAINT ledger_transactions_kind_check;
""")
    op.execute("ALTER TABLE payment_intents DROP COLUMN hold_ref")
    op.execute("DROP INDEX attempts_operation_reference")
    op.execute("ALTER TABLE attempts DROP COLUMN operation_reference")
