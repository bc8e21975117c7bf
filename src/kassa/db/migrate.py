"""Apply the Alembic migrations shipped in kassa/db/migrations and then the repeatable SQL in
kassa/db/sql (db/repeatable.py; one migrator at a time, under an advisory lock), check that a
database is at the schema this code needs, and grant the serving role exactly the privileges
the services use.

Two roles (README "Database roles and migrations"): the migration role owns the schema
(`kassa migrate`, `kassa dev`); the serving role (`kassa api`, `kassa worker`, …) only reads
and writes rows. A role that does not own a table cannot ALTER it, so it cannot `DISABLE
TRIGGER` on the append-only ledger; and it gets no UPDATE/DELETE on append-only tables.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from psycopg import sql

from kassa.db import repeatable
from kassa.startup_errors import StartupError

MIGRATIONS = Path(__file__).parent / "migrations"

# pg_advisory_lock(class, key): the two-int key space, apart from the relay's class ("kass").
MIGRATION_LOCK = (0x6B6D6967, 0)  # "kmig"

# What the serving role may do per table. Tables not named here get SELECT, INSERT, UPDATE,
# DELETE (the services' working tables: payments, attempts, keys, deliveries …). The ledger
# and the outbox are append-only (the triggers refuse UPDATE/DELETE too; without ownership the
# serving role cannot disable them), and the schema version is read only.
# psp_account_bindings: the serving role binds the platform's Stripe account, never
# rebinds it (an operator deletes the row as the schema owner: services/stripe_binding.py),
# and records the keys it checked (psp_verified_keys), never forgets or changes one
APPEND_ONLY = ("ledger_entries", "ledger_transactions", "events", "psp_account_bindings",
               "psp_verified_keys")
READ_ONLY = ("alembic_version", "kassa_sql_versions")
READ_WRITE = ("SELECT", "INSERT", "UPDATE", "DELETE")


def sqlalchemy_url(dsn: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+psycopg://" + dsn[len(prefix):]
    return dsn


def alembic_config(dsn: str) -> Config:
    cfg = Config(str(MIGRATIONS / "alembic.ini"))
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(dsn).replace("%", "%%"))
    return cfg


def upgrade(dsn: str, revision: str = "heads", *,
            on_wait: Callable[[int | None], None] | None = None) -> None:
    """Migrate to `revision`; at head, also re-create the repeatable SQL whose hash changed
    (db/repeatable.py), on the lock's connection in one transaction. Concurrent callers
    (replicas starting together, two `kassa migrate`) queue on a session advisory lock: the
    first migrates, the next finds nothing left to do. `on_wait(pid)` is told once when
    another migrator holds the lock."""
    with psycopg.connect(dsn, autocommit=True) as lock:
        if not lock.execute("SELECT pg_try_advisory_lock(%s, %s)",
                            MIGRATION_LOCK).fetchone()[0]:  # type: ignore[index]
            if on_wait is not None:
                row = lock.execute(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = %s"
                    " AND objid = %s AND granted LIMIT 1", MIGRATION_LOCK).fetchone()
                on_wait(row[0] if row else None)
            lock.execute("SELECT pg_advisory_lock(%s, %s)", MIGRATION_LOCK)
        # Released when `lock` closes, also if this process dies mid-migration.
        command.upgrade(alembic_config(dsn), revision)
        # An older revision's schema may lack what the repeatable SQL refers to.
        if revision in ("head", "heads") or revision in _script().get_heads():
            repeatable.apply_changed(lock)


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config("postgresql://"))


def require_current(dsn: str) -> None:
    """Raise StartupError unless every migration this code ships is applied and the
    repeatable SQL (kassa_apply's body) is the one this code ships. A database ahead of the
    code (a revision this code does not know, during a rolling deploy) is accepted:
    migrations expand first and contract later."""
    script = _script()
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        if conn.execute("SELECT to_regclass('alembic_version')").fetchone() == (None,):
            applied: set[str] = set()
            recorded: dict[str, str] = {}
        else:
            try:
                applied = {r[0] for r in conn.execute("SELECT version_num FROM alembic_version")}
                recorded = {} if conn.execute(
                    "SELECT to_regclass('kassa_sql_versions')").fetchone() == (None,) else dict(
                    conn.execute("SELECT name, sha256 FROM kassa_sql_versions").fetchall())
            except psycopg.errors.InsufficientPrivilege as exc:
                raise StartupError(
                    f"the role {role_of(dsn) or 'of KASSA_DATABASE_URL'} may not read kassa's "
                    "tables", "run `kassa migrate` with the owner's KASSA_MIGRATION_DATABASE_URL"
                    " and this role in KASSA_DATABASE_URL: it grants the privileges") from exc
    known = {rev.revision for rev in script.walk_revisions()}
    if applied - known:
        return
    reached = {rev.revision for rev in script.iterate_revisions(tuple(applied), "base")}
    missing = sorted(set(script.get_heads()) - reached)
    if missing:
        where = ", ".join(sorted(applied)) or "no kassa schema"
        raise StartupError(
            f"the database schema is behind this kassa (at: {where}; needs: "
            f"{', '.join(missing)})",
            "run `kassa migrate` (with the schema owner's KASSA_MIGRATION_DATABASE_URL) first")
    # At head, the functions must be the files this code ships: a body from another kassa
    # could ignore (or lack) an op this code sends.
    stale = [s.name for s in repeatable.sources() if recorded.get(s.name) != s.sha256]
    if stale:
        raise StartupError(
            f"the database's SQL functions are not this kassa's ({', '.join(stale)} "
            "differs from the one recorded in kassa_sql_versions)",
            "run `kassa migrate` (with the schema owner's KASSA_MIGRATION_DATABASE_URL) first")


def role_of(dsn: str) -> str | None:
    """The user name a postgresql:// URL logs in as (None when it names none)."""
    user = urlsplit(dsn).username
    return unquote(user) if user else None


def grant_service_role(dsn: str, role: str) -> None:
    """Give `role` (the serving role) what the services need on every kassa table, and no
    more: run as the schema owner after each upgrade (idempotent; privileges the role had
    beyond these are revoked)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT r.rolsuper, current_user, current_schema(), current_database(),"
            " pg_has_role(%(role)s, n.nspowner, 'USAGE'),"
            " pg_has_role(%(role)s, d.datdba, 'USAGE')"
            " FROM pg_roles r, pg_namespace n, pg_database d"
            " WHERE r.rolname = %(role)s AND n.nspname = current_schema()"
            " AND d.datname = current_database()", {"role": role}).fetchone()
        if row is None:
            raise StartupError(f"the serving role {role!r} does not exist",
                               f"create it first: CREATE ROLE {role} LOGIN PASSWORD '…'")
        superuser, owner, schema, database, owns_schema, owns_database = row
        if role == owner:
            raise StartupError(
                f"the serving role {role!r} is the migration role (it owns the schema)",
                "serve with another role in KASSA_DATABASE_URL, or unset KASSA_SERVICE_ROLE")
        if superuser:
            raise StartupError(f"the serving role {role!r} is a superuser: privileges cannot "
                               "restrict it", f"ALTER ROLE {role} NOSUPERUSER")
        if owns_schema:
            raise StartupError(f"the serving role {role!r} owns schema {schema}, so it could "
                               "drop the ledger", f"ALTER SCHEMA {schema} OWNER TO {owner}")
        if owns_database:
            raise StartupError(f"the serving role {role!r} owns database {database}, so it "
                               "could drop it", f"ALTER DATABASE {database} OWNER TO {owner}")
        ident, nsp = sql.Identifier(role), sql.Identifier(schema)
        tables = [r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm')"
            " ORDER BY c.relname", (schema,))]
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(nsp, ident))
        conn.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(nsp, ident))
        for table in tables:
            privileges = (("SELECT", "INSERT") if table in APPEND_ONLY
                          else ("SELECT",) if table in READ_ONLY else READ_WRITE)
            conn.execute(sql.SQL("GRANT {} ON {}.{} TO {}").format(
                sql.SQL(", ").join(map(sql.SQL, privileges)), nsp, sql.Identifier(table),
                ident))
        conn.execute(sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}")
                     .format(nsp, ident))
        conn.execute(sql.SQL("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {} TO {}")
                     .format(nsp, ident))


def migrate(migration_dsn: str, *, service_role: str | None = None,
            on_wait: Callable[[int | None], None] | None = None) -> None:
    """`kassa migrate` / `kassa dev`: upgrade, then (when a serving role is named) grant it
    its privileges, both under the migration lock."""
    from sqlalchemy.exc import DBAPIError

    try:
        upgrade(migration_dsn, on_wait=on_wait)
    except DBAPIError as exc:  # alembic's engine wraps the database's own error
        first = str(exc.orig or exc).strip().splitlines()[0]
        raise StartupError(f"a migration failed: {first}",
                           "migrate as the schema owner (KASSA_MIGRATION_DATABASE_URL); "
                           "--debug shows the statement") from exc
    if service_role:
        with psycopg.connect(migration_dsn, autocommit=True) as lock:
            # GRANTs racing on the same objects fail ("tuple concurrently updated").
            lock.execute("SELECT pg_advisory_lock(%s, %s)", MIGRATION_LOCK)
            grant_service_role(migration_dsn, service_role)
