"""The vault's database privileges, granted by `kassa migrate` as the schema owner.

- the **vault role** (``kassa vault``, ``kassa vault rotate-kek``) reads and writes the
  ``kassa_vault`` schema (no DELETE but of expired idempotency keys: a sealed card is never
  silently dropped) and reads
  ``api_keys`` (to authenticate publishable keys) and ``merchants``;
- the **serving role** (API, workers) may read ``kassa_vault.payment_methods`` only: brand,
  last4, expiry, fingerprint; and update what a merchant may change of a card there (its
  customer and whether it was detached from one, billing details, metadata, expiry:
  services/saved_cards.py). ``card_secrets``,
  ``data_keys`` and ``kek_versions`` are out of its reach, so a compromised API or a dump
  taken with its credentials holds no ciphertext.

(With one role for everything, as in ``kassa dev``, nothing is granted or withheld.)
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from kassa.db.migrate import MIGRATION_LOCK
from kassa.startup_errors import StartupError

SCHEMA = "kassa_vault"
VAULT_TABLES = ("card_secrets", "data_keys", "kek_versions", "payment_methods",
                "idempotency_keys")
PRUNED = ("idempotency_keys",)  # the one table the vault deletes from (after 24 hours)
VAULT_READS = ("api_keys", "merchants")  # in the services' schema
SERVING_READS = ("payment_methods",)
# columns of payment_methods the serving role may UPDATE (no INSERT, no DELETE, no other column)
SERVING_UPDATES = ("customer", "detached", "used_by", "billing_details", "metadata",
                   "exp_month", "exp_year")


def grant(dsn: str, *, vault_role: str | None, service_role: str | None) -> None:
    """Idempotent; privileges either role had on the vault's schema beyond these are
    revoked."""
    if not vault_role and not service_role:
        return
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s, %s)", MIGRATION_LOCK)
        owner, schema = conn.execute(
            "SELECT current_user, current_schema()").fetchone()  # type: ignore[misc]
        vault = sql.Identifier(SCHEMA)
        if vault_role:
            _check(conn, vault_role, owner=owner, other=service_role)
            role = sql.Identifier(vault_role)
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(vault, role))
            conn.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(
                vault, role))
            for table in VAULT_TABLES:
                privileges = "SELECT, INSERT, UPDATE" + (", DELETE" if table in PRUNED else "")
                conn.execute(sql.SQL("GRANT {} ON {}.{} TO {}").format(
                    sql.SQL(privileges), vault, sql.Identifier(table), role))
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                sql.Identifier(schema), role))
            for table in VAULT_READS:
                conn.execute(sql.SQL("GRANT SELECT ON {}.{} TO {}").format(
                    sql.Identifier(schema), sql.Identifier(table), role))
        if service_role:
            role = sql.Identifier(service_role)
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(vault, role))
            conn.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(
                vault, role))
            conn.execute(sql.SQL("REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {} FROM {}").format(
                vault, role))
            for table in SERVING_READS:
                conn.execute(sql.SQL("GRANT SELECT ON {}.{} TO {}").format(
                    vault, sql.Identifier(table), role))
            conn.execute(sql.SQL("GRANT UPDATE ({}) ON {}.payment_methods TO {}").format(
                sql.SQL(", ").join(map(sql.Identifier, SERVING_UPDATES)), vault, role))


def _check(conn: psycopg.Connection, role: str, *, owner: str, other: str | None) -> None:
    row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    if row is None:
        raise StartupError(f"the vault role {role!r} does not exist",
                           f"create it first: CREATE ROLE {role} LOGIN PASSWORD '…'")
    if role in (owner, other):
        raise StartupError(f"the vault role {role!r} is also the "
                           f"{'migration' if role == owner else 'serving'} role",
                           "give the vault a role of its own (KASSA_VAULT_DATABASE_URL)")
    if row[0]:
        raise StartupError(f"the vault role {role!r} is a superuser: privileges cannot "
                           "restrict it", f"ALTER ROLE {role} NOSUPERUSER")
