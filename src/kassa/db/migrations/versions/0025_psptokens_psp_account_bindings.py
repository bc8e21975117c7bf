"""Which account at the PSP each of the platform's PSP accounts is bound to.

Revision ID: psp_account_bindings
Revises: ledger_balance_checkpoints

``psp_account_bindings``: per platform account name (``stripe``), the id of the account at
the PSP its credentials were first found to belong to (Stripe's ``acct_…``, from
``GET /v1/account`` with the key). Every start compares the configured key's account with
it: a key of another Stripe account is refused (the payments kassa took live in the bound
one). The bound id never changes in place (a trigger refuses the UPDATE); moving the
platform to another Stripe account on purpose is deleting the row once nothing is left to
capture, refund or recover there. Merchants' own accounts keep theirs in
``psp_accounts.settings`` (``stripe_account``), checked the same way on each rotation.
"""

from alembic import op

revision = "psp_account_bindings"
down_revision = "ledger_balance_checkpoints"

UPGRADE = r"""
CREATE TABLE psp_account_bindings (
    account          text PRIMARY KEY,       -- the platform account's name (attempts' psp)
    psp              text NOT NULL,          -- stripe
    psp_account_ref  text NOT NULL CHECK (psp_account_ref <> ''),  -- acct_…
    bound_at         timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION psp_account_bindings_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'psp_account_bindings: % stays bound to %; delete the row to rebind',
        OLD.account, OLD.psp_account_ref USING ERRCODE = 'check_violation';
END $$;

CREATE TRIGGER psp_account_bindings_immutable BEFORE UPDATE ON psp_account_bindings
    FOR EACH ROW EXECUTE FUNCTION psp_account_bindings_immutable();
"""

DOWNGRADE = r"""
DROP TABLE psp_account_bindings;
DROP FUNCTION psp_account_bindings_immutable();
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
