"""Payout destinations' account numbers sealed at rest (payouts/payout_numbers.py).

Revision ID: payoutbits_sealed_numbers
Revises: fxrecon_psp_conversions (re-chained after main took fxrecon's 0029)

Each destination's IBAN or account number moves into ``account_sealed`` (AES-256-GCM under
kassa's secrets box, bound to the destination and its merchant) and the clear columns
``iban`` and ``account_number`` are dropped: a dump shows only ``last4``. Which scheme a
destination uses stays readable: an IBAN destination has no routing number. The downgrade
opens every number back into the clear columns.

The secrets keys are the ones the API uses (``KASSA_SECRETS_KEYS`` or the key file,
kassa/secrets_box.py), read from the environment `kassa migrate` runs in. A database with
destinations and no key refuses to migrate (nothing is changed); one without destinations
needs no key.
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "payoutbits_sealed_numbers"
down_revision = "fxrecon_psp_conversions"

# 0013's checks that the scheme's fields are there, and 0028's Japanese account type, both
# written on the clear columns: replaced by their equivalents on routing_number
OLD_CHECKS = {
    "payout_destinations_check":
        "CHECK ((iban IS NOT NULL) <> (routing_number IS NOT NULL AND account_number IS NOT"
        " NULL))",
    "payout_destinations_check1":
        "CHECK (iban IS NULL OR (routing_number IS NULL AND account_number IS NULL))",
    "payout_destinations_jp_account_type":
        "CHECK ((country = 'JP') = (account_type IS NOT NULL AND iban IS NULL))",
}
NEW_JP_CHECK = ("CHECK ((country = 'JP') = (account_type IS NOT NULL AND routing_number IS"
                " NOT NULL))")


def _box() -> Any:
    """The API's secrets box (kassa/bootstrap.secrets' rule); None when no key is set."""
    from kassa import secrets_box
    from kassa.config import Settings

    attributes = op.get_context().config.attributes if op.get_context().config else {}
    if attributes.get("secrets_box") is not None:
        return attributes["secrets_box"]
    settings = Settings()
    return secrets_box.load(keys=settings.secrets_keys, key_file=settings.secrets_key_path(),
                            create=settings.env != "production")


def _need_box(count: int, direction: str) -> Any:
    box = _box() if count else None
    if count and box is None:
        raise RuntimeError(
            f"payoutbits_sealed_numbers {direction} refused: {count} payout "
            "destination(s) and no secrets key (set KASSA_SECRETS_KEYS or "
            "KASSA_SECRETS_KEY_FILE to the API's keys)")
    return box


def upgrade() -> None:
    from kassa.services.payout_numbers import seal_number

    conn = op.get_bind()
    conn.execute(sa.text("LOCK TABLE payout_destinations IN SHARE ROW EXCLUSIVE MODE"))
    rows = conn.execute(sa.text(
        "SELECT id, merchant_id, coalesce(iban, account_number) AS number"
        " FROM payout_destinations ORDER BY seq")).fetchall()
    box = _need_box(len(rows), "upgrade")
    op.execute("ALTER TABLE payout_destinations ADD COLUMN account_sealed bytea")
    for name in OLD_CHECKS:  # they need a clear number, which the UPDATE below nulls
        op.execute(f"ALTER TABLE payout_destinations DROP CONSTRAINT {name}")
    for row in rows:
        conn.execute(sa.text("UPDATE payout_destinations SET account_sealed = :sealed,"
                             " iban = NULL, account_number = NULL WHERE id = :id"),
                     {"id": row.id, "sealed": seal_number(
                         box, destination_id=row.id, merchant_id=row.merchant_id,
                         number=row.number)})
    op.execute("ALTER TABLE payout_destinations DROP COLUMN iban,"
               " DROP COLUMN account_number,"
               " ALTER COLUMN account_sealed SET NOT NULL")
    # rewrite the heap, after the DROP COLUMN: CLUSTER copies the UPDATEs' old row versions
    # too (still visible to this transaction), but a rewrite writes a dropped column of every
    # copied row as null, so no clear number is left in the table's files (WAL archives and
    # base backups taken before keep them)
    op.execute("CLUSTER payout_destinations USING payout_destinations_pkey")
    op.execute("ALTER TABLE payout_destinations SET WITHOUT CLUSTER")
    op.execute("ALTER TABLE payout_destinations ADD CONSTRAINT"
               f" payout_destinations_jp_account_type {NEW_JP_CHECK}")
    # a US destination has an account type only in Japan, and a routing number either way
    op.execute("ALTER TABLE payout_destinations ADD CONSTRAINT payout_destinations_us_routing"
               " CHECK (country <> 'US' OR routing_number IS NOT NULL)")


def downgrade() -> None:
    from kassa.services.payout_numbers import open_number

    conn = op.get_bind()
    conn.execute(sa.text("LOCK TABLE payout_destinations IN SHARE ROW EXCLUSIVE MODE"))
    rows = conn.execute(sa.text(
        "SELECT id, merchant_id, routing_number IS NULL AS iban, account_sealed"
        " FROM payout_destinations ORDER BY seq")).fetchall()
    box = _need_box(len(rows), "downgrade")
    op.execute("ALTER TABLE payout_destinations DROP CONSTRAINT payout_destinations_us_routing,"
               " DROP CONSTRAINT payout_destinations_jp_account_type,"
               " ADD COLUMN iban text, ADD COLUMN account_number text")
    for row in rows:
        number = open_number(box, destination_id=row.id, merchant_id=row.merchant_id,
                             sealed=bytes(row.account_sealed))
        conn.execute(sa.text(
            "UPDATE payout_destinations SET iban = CASE WHEN :iban THEN :number END,"
            " account_number = CASE WHEN :iban THEN NULL ELSE :number END WHERE id = :id"),
            {"id": row.id, "iban": row.iban, "number": number})
    op.execute("ALTER TABLE payout_destinations DROP COLUMN account_sealed")
    for name, check in OLD_CHECKS.items():
        op.execute(f"ALTER TABLE payout_destinations ADD CONSTRAINT {name} {check}")
