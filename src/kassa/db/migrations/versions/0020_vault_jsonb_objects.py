"""The vault's card columns hold JSON objects, not JSON strings.

Revision ID: vault_jsonb_objects
Revises: cards_rules_single_use

Until this revision the vault's store and the customers' card update encoded ``checks``,
``billing_details`` and ``metadata`` with orjson and then handed the text to the pool, whose
jsonb codec (db/pool.py) encoded it again: each column held a JSON *string* containing the
object. Python read them back whole (it decoded twice) but SQL saw strings
(``checks->>'cvc_check'`` was NULL). The code now hands the codec the objects; this revision
decodes the rows written before and makes the database refuse anything but an object from now
on. Downgrading writes the rows back as the previous release reads them (strings).
"""

from alembic import op

revision = "vault_jsonb_objects"
down_revision = "cards_rules_single_use"

COLUMNS = ("checks", "billing_details", "metadata")


def upgrade() -> None:
    for column in COLUMNS:
        op.execute(
            f"UPDATE kassa_vault.payment_methods SET {column} = ({column} #>> '{{}}')::jsonb"
            f" WHERE jsonb_typeof({column}) = 'string'")
        op.execute(
            f"ALTER TABLE kassa_vault.payment_methods ADD CONSTRAINT payment_methods_{column}"
            f"_object CHECK (jsonb_typeof({column}) = 'object')")


def downgrade() -> None:
    for column in COLUMNS:
        op.execute("ALTER TABLE kassa_vault.payment_methods DROP CONSTRAINT"
                   f" payment_methods_{column}_object")
        op.execute(f"UPDATE kassa_vault.payment_methods SET {column} = to_jsonb({column}::text)")
