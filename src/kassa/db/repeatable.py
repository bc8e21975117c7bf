"""Repeatable migrations: the SQL files in kassa/db/sql (today apply.sql, the body of
kassa_apply) are the reviewed source of the functions they create. `upgrade` in db/migrate.py
runs this after the Alembic migrations have reached head, under the migration lock: each file
whose sha256 differs from the one recorded in kassa_sql_versions (migration 0009) is executed
again (its statements are CREATE OR REPLACE) and its hash recorded, all in one transaction.

A versioned migration never redefines these functions: changing an op means editing its file;
the next `kassa migrate` re-creates it. A database upgraded from any released revision ends
with the function in the file, whatever body the migrations on the way created.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

import psycopg

SQL_PACKAGE = "kassa.db"
SQL_FOLDER = "sql"


@dataclass(frozen=True)
class Source:
    name: str  # the file's name, e.g. "apply.sql"
    text: str
    sha256: str


def sources() -> list[Source]:
    """Every repeatable SQL file shipped with this kassa, in name order (read through
    importlib.resources, so an installed wheel finds them as the source tree does)."""
    folder = resources.files(SQL_PACKAGE).joinpath(SQL_FOLDER)
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql") and entry.is_file():
            data = entry.read_bytes()
            found.append(Source(entry.name, data.decode("utf-8"),
                                hashlib.sha256(data).hexdigest()))
    return sorted(found, key=lambda s: s.name)


def apply_changed(conn: psycopg.Connection, shipped: list[Source] | None = None) -> list[str]:
    """Re-create every source whose hash differs from the recorded one, in one transaction on
    `conn` (the caller holds the migration lock). Returns the names applied."""
    shipped = sources() if shipped is None else shipped
    applied = []
    with conn.transaction():
        recorded = dict(conn.execute("SELECT name, sha256 FROM kassa_sql_versions").fetchall())
        for source in shipped:
            if recorded.get(source.name) == source.sha256:
                continue
            conn.execute(source.text.encode("utf-8"))  # no parameters: the file as written
            conn.execute(
                "INSERT INTO kassa_sql_versions (name, sha256, applied_at)"
                " VALUES (%s, %s, now()) ON CONFLICT (name) DO UPDATE"
                " SET sha256 = excluded.sha256, applied_at = excluded.applied_at",
                (source.name, source.sha256))
            applied.append(source.name)
    return applied
