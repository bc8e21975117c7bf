"""Merchants' own PSP accounts (/v1/psp_accounts).

Revision ID: psp_accounts_merchant_accounts
Revises: adyen_modification_refs

What protects the accounts here rather than in Python alone:
- ``credentials`` is a sealed value (kassa/secrets_box.py: key version, nonce, AES-256-GCM),
  never plain text; it opens only for this row's id and merchant (associated data);
- ``revision`` grows with every change, so each process rebuilds a cached adapter exactly
  when its row changed;
- an account is never deleted while attempts may still need it (a capture, refund or
  recovery of a payment it took): DELETE sets ``deleted``, which only stops new
  payments, and a trigger refuses DELETE of the row.
"""

from alembic import op

revision = "psp_accounts_merchant_accounts"
down_revision = "adyen_modification_refs"

UPGRADE = r"""
CREATE TABLE psp_accounts (
    seq          bigint GENERATED ALWAYS AS IDENTITY,
    id           text PRIMARY KEY,
    merchant_id  text NOT NULL REFERENCES merchants(id),
    psp          text NOT NULL CHECK (psp IN ('stripe', 'adyen', 'simulator')),
    enabled      boolean NOT NULL DEFAULT true,
    currencies   text[] NOT NULL CHECK (cardinality(currencies) >= 1),
    settings     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(settings) = 'object'),
    credentials  bytea NOT NULL CHECK (length(credentials) > 32),
    revision     integer NOT NULL DEFAULT 1 CHECK (revision >= 1),
    livemode     boolean NOT NULL DEFAULT false,
    created      bigint NOT NULL,
    updated      bigint NOT NULL,
    deleted      bigint
);
CREATE INDEX psp_accounts_merchant ON psp_accounts (merchant_id, seq);

CREATE FUNCTION psp_accounts_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'PSP account % may still be needed by its payments; it is marked '
        'deleted, never removed', OLD.id USING ERRCODE = 'check_violation';
END $$;
CREATE TRIGGER psp_accounts_kept BEFORE DELETE ON psp_accounts
    FOR EACH ROW EXECUTE FUNCTION psp_accounts_kept();
"""

DOWNGRADE = r"""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM attempts a JOIN psp_accounts p ON p.id = a.psp) THEN
        RAISE EXCEPTION 'payments were made through merchant PSP accounts; dropping the '
            'accounts would strand their captures and refunds';
    END IF;
END $$;
DROP TABLE psp_accounts;
DROP FUNCTION psp_accounts_kept();
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
