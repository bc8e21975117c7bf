"""Japanese payout destinations: a Zengin account's type (futsu or toza).

Revision ID: jp_payout_destinations
Revises: psp_verified_keys

A Japanese bank account is stored like a US one (``routing_number`` = the 4-digit bank code
and the 3-digit branch code, ``account_number`` its 7 digits) plus ``account_type``, which
a Japanese account must have and no other may (domain/bank_accounts.py). The downgrade is
refused while a Japanese destination exists: the old schema cannot say its account type,
and a payout sent without it could not be credited.
"""

from alembic import op

revision = "jp_payout_destinations"
down_revision = "psp_verified_keys"

UPGRADE = r"""
ALTER TABLE payout_destinations ADD COLUMN account_type text
    CHECK (account_type IN ('futsu', 'toza'));
ALTER TABLE payout_destinations ADD CONSTRAINT payout_destinations_jp_account_type
    CHECK ((country = 'JP') = (account_type IS NOT NULL AND iban IS NULL)) NOT VALID;
ALTER TABLE payout_destinations VALIDATE CONSTRAINT payout_destinations_jp_account_type;
"""

DOWNGRADE = r"""
DO $$
DECLARE
    jp bigint := (SELECT count(*) FROM payout_destinations WHERE account_type IS NOT NULL);
BEGIN
    IF jp > 0 THEN
        RAISE EXCEPTION 'jp_payout_destinations downgrade refused: % Japanese payout'
            ' destination(s) would lose their account type', jp;
    END IF;
END $$;
ALTER TABLE payout_destinations DROP CONSTRAINT payout_destinations_jp_account_type;
ALTER TABLE payout_destinations DROP COLUMN account_type;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
