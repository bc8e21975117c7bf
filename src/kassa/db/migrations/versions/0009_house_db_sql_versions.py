"""kassa_sql_versions: the hash of each repeatable SQL file (kassa/db/sql/*.sql) as last
applied.

Revision ID: house_db_sql_versions
Revises: 0008

From here on kassa_apply's body lives in kassa/db/sql/apply.sql, re-created by db/repeatable.py
after the migrations whenever the file's sha256 differs from the row recorded here (no row:
applied on the first `kassa migrate` that reaches this revision). Downgrading drops the table
and restores the body migration 0008 created, which matches the schema at 0008.
"""

from importlib import import_module

from alembic import op

revision = "house_db_sql_versions"
down_revision = "0008"


def upgrade() -> None:
    op.execute("""
        CREATE TABLE kassa_sql_versions (
            name text PRIMARY KEY,
            sha256 text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )""")


def downgrade() -> None:
    op.execute("DROP TABLE kassa_sql_versions")
    previous = import_module("kassa.db.migrations.versions.0008_attempts_watched")
    op.execute(previous.UPGRADE)
