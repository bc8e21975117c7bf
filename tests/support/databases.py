"""Throw-away databases and roles on the test server."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from kassa.db.migrate import upgrade


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database."""
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def with_user(url: str, user: str) -> str:
    """The same URL logging in as another role (trust auth on the test servers)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}@{host}"))


@contextlib.contextmanager
def empty_database(server_url: str, prefix: str = "kassa_test", *,
                   owner: str | None = None) -> Iterator[str]:
    """A fresh database without kassa's schema (owned by `owner` if given), dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = with_database(server_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if owner:
            create += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
        conn.execute(create)
    try:
        yield with_database(server_url, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                         .format(sql.Identifier(name)))


@contextlib.contextmanager
def migrated_database(server_url: str, prefix: str = "kassa_test") -> Iterator[str]:
    """A fresh database with kassa's migrations applied, dropped afterwards."""
    with empty_database(server_url, prefix) as url:
        upgrade(url)
        yield url


@contextlib.contextmanager
def login_role(server_url: str, prefix: str) -> Iterator[str]:
    """A fresh LOGIN role (cluster-wide, so named uniquely), dropped afterwards with whatever
    it owns or was granted in the databases still present."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = with_database(server_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
