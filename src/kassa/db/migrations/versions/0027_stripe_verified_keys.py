"""The platform's PSP keys already found to belong to the bound account.

Revision ID: psp_verified_keys
Revises: fx_exchange_rates

``psp_verified_keys``: per platform account name (``stripe``), the SHA-256 of each secret key
whose account at the PSP (``GET /v1/account``) was found to be the bound one
(``psp_account_bindings``). A start with a key checked before asks the PSP nothing: a key
belongs to one Stripe account for ever, so the answer cannot change, and kassa starts (and
serves its other PSPs) while Stripe cannot be reached. Only a key never seen is asked about.
A digest, not the key: a high-entropy secret key cannot be recovered from it. Rows are
never changed (insert and read only for the serving role).
"""

from alembic import op

revision = "psp_verified_keys"
down_revision = "fx_exchange_rates"

UPGRADE = r"""
CREATE TABLE psp_verified_keys (
    account          text NOT NULL,          -- the platform account's name (stripe)
    key_sha256       bytea NOT NULL CHECK (length(key_sha256) = 32),
    psp_account_ref  text NOT NULL CHECK (psp_account_ref <> ''),  -- acct_… it belongs to
    verified_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, key_sha256)
);
"""

DOWNGRADE = r"""
DROP TABLE psp_verified_keys;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
