"""The repeatable SQL (kassa/db/sql/*.sql, db/repeatable.py): a database upgraded to head from
any released revision runs the function in the file, the hash of what was applied is recorded,
and a changed file is re-created on the next upgrade (an unchanged one is not)."""

from __future__ import annotations

import hashlib
import re
from importlib import resources

import psycopg
import pytest
from alembic import command

from kassa.db import repeatable
from kassa.db.migrate import MIGRATION_LOCK, alembic_config, require_current, upgrade
from kassa.startup_errors import StartupError
from tests.support.databases import empty_database

RELEASED = ["0001", "0002", "0003", "0004", "0005", "0006", "0007_dispute_withdrawn", "0008"]


def _file(name: str) -> bytes:
    return resources.files("kassa.db").joinpath("sql", name).read_bytes()


def _body(sql: str) -> str:
    """The plpgsql body between the dollar quotes (what pg_proc.prosrc holds)."""
    match = re.search(r"\$\$(.*)\$\$", sql, re.S)
    assert match, "a function body in $$ … $$"
    return match.group(1)


def _deployed(conn: psycopg.Connection) -> str:
    row = conn.execute("SELECT prosrc FROM pg_proc WHERE proname = 'kassa_apply'"
                       " AND pg_get_function_identity_arguments(oid) = 'ops jsonb'").fetchone()
    assert row is not None
    return str(row[0])


def _recorded(conn: psycopg.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT name, sha256 FROM kassa_sql_versions").fetchall())


def test_apply_sql_is_the_only_shipped_source_and_replaces_the_function():
    names = [s.name for s in repeatable.sources()]
    assert "apply.sql" in names
    text = _file("apply.sql").decode()
    assert text.count("CREATE OR REPLACE FUNCTION kassa_apply(ops jsonb) RETURNS void") == 1


@pytest.mark.parametrize("released", RELEASED)
def test_a_database_at_a_released_revision_upgraded_to_head_runs_the_file(server_url, released):
    with empty_database(server_url, "kassa_rep") as url:
        upgrade(url, released)
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT to_regclass('kassa_sql_versions')").fetchone() == (None,)
        upgrade(url)
        with psycopg.connect(url) as conn:
            assert _deployed(conn) == _body(_file("apply.sql").decode())
            assert _recorded(conn) == {
                s.name: hashlib.sha256(_file(s.name)).hexdigest()
                for s in repeatable.sources()}


def test_a_changed_file_is_re_created_once_and_an_unchanged_one_not_at_all(server_url):
    with empty_database(server_url, "kassa_rep") as url:
        upgrade(url)
        shipped = repeatable.sources()
        with psycopg.connect(url, autocommit=True) as conn:
            assert repeatable.apply_changed(conn) == []  # already recorded: nothing runs
            before = conn.execute("SELECT applied_at FROM kassa_sql_versions"
                                  " WHERE name = 'apply.sql'").fetchone()
            edited = [repeatable.Source(s.name, s.text.replace(
                "'kassa_apply: unknown operation %'", "'kassa_apply: no such operation %'"),
                "0" * 64) if s.name == "apply.sql" else s for s in shipped]
            assert repeatable.apply_changed(conn, edited) == ["apply.sql"]
            assert "no such operation" in _deployed(conn)
            assert repeatable.apply_changed(conn, edited) == []
            with pytest.raises(psycopg.errors.RaiseException, match="no such operation"):
                conn.execute("""SELECT kassa_apply('[{"op": "nope", "row": {}}]')""")
            assert conn.execute("SELECT applied_at FROM kassa_sql_versions"
                                " WHERE name = 'apply.sql'").fetchone() != before
        upgrade(url)  # the shipped file differs from the recorded hash again
        with psycopg.connect(url) as conn:
            assert _deployed(conn) == _body(_file("apply.sql").decode())
            assert _recorded(conn)["apply.sql"] == hashlib.sha256(_file("apply.sql")).hexdigest()


def test_a_failing_file_changes_nothing(server_url):
    with empty_database(server_url, "kassa_rep") as url:
        upgrade(url)
        broken = [repeatable.Source("apply.sql", "CREATE OR REPLACE FUNCTION kassa_apply(ops"
                                    " jsonb) RETURNS void LANGUAGE plpgsql AS $$ BEGIN; $$",
                                    "1" * 64)]
        with psycopg.connect(url, autocommit=True) as conn:
            recorded = _recorded(conn)
            with pytest.raises(psycopg.errors.SyntaxError):
                repeatable.apply_changed(conn, broken)
            assert _recorded(conn) == recorded
            assert _deployed(conn) == _body(_file("apply.sql").decode())


def test_upgrade_to_head_re_creates_under_the_migration_lock(server_url):
    with empty_database(server_url, "kassa_rep") as url:
        upgrade(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DELETE FROM kassa_sql_versions")
            conn.execute("CREATE OR REPLACE FUNCTION kassa_apply(ops jsonb) RETURNS void"
                         " LANGUAGE plpgsql AS $$ BEGIN END $$")
        with psycopg.connect(url, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s, %s)", MIGRATION_LOCK)
            waited: list[int | None] = []
            import threading

            worker = threading.Thread(target=upgrade, args=(url,),
                                      kwargs={"on_wait": waited.append})
            worker.start()
            worker.join(1.0)
            assert worker.is_alive() and waited  # queued on the lock, nothing re-created
            with psycopg.connect(url) as conn:
                assert _deployed(conn).strip() == "BEGIN END"
            holder.execute("SELECT pg_advisory_unlock(%s, %s)", MIGRATION_LOCK)
            worker.join(30)
        with psycopg.connect(url) as conn:
            assert _deployed(conn) == _body(_file("apply.sql").decode())


def test_downgrade_to_0008_restores_its_body_and_upgrades_again(server_url):
    with empty_database(server_url, "kassa_rep") as url:
        upgrade(url)
        command.downgrade(alembic_config(url), "0008")
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT to_regclass('kassa_sql_versions')").fetchone() == (None,)
            assert "insert_payment" in _deployed(conn)
        upgrade(url)
        with psycopg.connect(url) as conn:
            assert _deployed(conn) == _body(_file("apply.sql").decode())


def test_serving_refuses_a_function_this_code_does_not_ship_until_migrated(server_url):
    with empty_database(server_url, "kassa_rep") as url:
        upgrade(url)
        require_current(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE kassa_sql_versions SET sha256 = 'another kassa'")
        with pytest.raises(StartupError, match="apply.sql") as refused:
            require_current(url)
        assert "kassa migrate" in refused.value.remedy
        upgrade(url)
        require_current(url)
