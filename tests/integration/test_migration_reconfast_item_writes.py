"""Migration reconfast_item_writes: the items' foreign key to their run becomes triggers once
per statement — an item still cannot name a run that does not exist, a run with items still
cannot be deleted, re-keyed or truncated away; the matched index keeps only unposted items.
Down (the key back, validated over the runs' items) and up again keep every row."""

from __future__ import annotations

import psycopg
import pytest
from alembic import command

from kassa.db.migrate import alembic_config, upgrade
from tests.support.databases import empty_database

RUN = ("INSERT INTO reconciliation_runs (id, psp, format, source_name, file_sha256, status,"
       " created) VALUES (%s, 'simulator', 'simulator', 'f', repeat(%s, 64), 'completed', 0)")
ITEMS = ("INSERT INTO reconciliation_items (run_id, row_number, category, psp_reference,"
         " gross, fee, currency, matched, posted) VALUES (%s, 2, 'charge', 'sim_1', 100, 3,"
         " 'usd', 'pi_1', true), (%s, 3, 'charge', 'sim_2', 100, 3, 'usd', 'pi_2', false)")

ORPHAN = ("INSERT INTO reconciliation_items (run_id, row_number, category, gross, fee,"
          " currency) VALUES ('recon_nope', 9, 'fee', 0, 1, 'usd')")


def key_exists(conn: psycopg.Connection) -> bool:
    return bool(conn.execute("SELECT 1 FROM pg_constraint WHERE conname ="
                             " 'reconciliation_items_run_id_fkey'").fetchall())


def test_an_item_names_a_run_that_exists(server_url):
    with empty_database(server_url, "kassa_item_writes_rules") as u:
        upgrade(u)
        with psycopg.connect(u, autocommit=True) as conn:
            assert not key_exists(conn)
            conn.execute(RUN, ("recon_1", "a"))
            with pytest.raises(psycopg.errors.ForeignKeyViolation, match="recon_nope"):
                conn.execute(ITEMS, ("recon_nope", "recon_nope"))
            with pytest.raises(psycopg.errors.ForeignKeyViolation, match="recon_nope"):
                # one statement, one good run and one missing: all of it refused
                conn.execute(ITEMS, ("recon_1", "recon_nope"))
            assert conn.execute("SELECT count(*) FROM reconciliation_items").fetchone() == (0,)
            conn.execute(ITEMS, ("recon_1", "recon_1"))
            with pytest.raises(psycopg.errors.ForeignKeyViolation):
                conn.execute("UPDATE reconciliation_items SET run_id = 'recon_nope'")
            for statement in ("DELETE FROM reconciliation_runs WHERE id = 'recon_1'",
                              "UPDATE reconciliation_runs SET id = 'recon_9'",
                              "TRUNCATE reconciliation_runs CASCADE"):
                with pytest.raises(psycopg.errors.ForeignKeyViolation):
                    conn.execute(statement)
            conn.execute("UPDATE reconciliation_runs SET source_name = 'g'")  # not its id
            conn.execute(RUN, ("recon_2", "b"))
            conn.execute("DELETE FROM reconciliation_runs WHERE id = 'recon_2'")  # no items
            # the matched index has only the unposted items (reconciliation_settled_object
            # has the posted ones)
            assert conn.execute(
                "SELECT pg_get_indexdef('reconciliation_items_matched'::regclass)"
            ).fetchone()[0].endswith("WHERE ((matched IS NOT NULL) AND (NOT posted))")


def test_down_and_up_again_keep_the_items(server_url):
    with empty_database(server_url, "kassa_item_writes_down") as u:
        upgrade(u)
        with psycopg.connect(u, autocommit=True) as conn:
            conn.execute(RUN, ("recon_1", "a"))
            conn.execute(ITEMS, ("recon_1", "recon_1"))
        command.downgrade(alembic_config(u), "payoutbits_chargeback_reversals")
        with psycopg.connect(u, autocommit=True) as conn:
            assert key_exists(conn)
            assert conn.execute("SELECT pg_get_indexdef('reconciliation_items_matched'"
                                "::regclass)").fetchone()[0].endswith(
                "WHERE (matched IS NOT NULL)")
            assert conn.execute("SELECT count(*) FROM reconciliation_items").fetchone() == (2,)
            with pytest.raises(psycopg.errors.ForeignKeyViolation):
                conn.execute(ORPHAN)
            assert not conn.execute("SELECT to_regproc('reconciliation_items_run_exists')"
                                    ).fetchone()[0]
        upgrade(u)
        with psycopg.connect(u, autocommit=True) as conn:
            assert not key_exists(conn)
            assert conn.execute("SELECT count(*) FROM reconciliation_items").fetchone() == (2,)
            with pytest.raises(psycopg.errors.ForeignKeyViolation):
                conn.execute("DELETE FROM reconciliation_runs")


def test_a_run_is_deleted_only_where_the_trigger_sees_every_committed_item(server_url):
    """Under REPEATABLE READ the deleter's snapshot predates an item committed since, which
    the key's own check would still have seen: such a delete is refused (found by review:
    it left an orphan item). A temporary table named like the items cannot stand in for
    them either (the functions' search_path puts pg_temp last)."""
    with empty_database(server_url, "kassa_item_writes_isolation") as u:
        upgrade(u)
        with psycopg.connect(u, autocommit=True) as setup:
            setup.execute(RUN, ("recon_1", "a"))
        with psycopg.connect(u) as deleter, psycopg.connect(u, autocommit=True) as writer:
            deleter.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            deleter.execute("SELECT 1 FROM reconciliation_runs").fetchall()  # the snapshot
            writer.execute(ITEMS, ("recon_1", "recon_1"))
            with pytest.raises(psycopg.errors.ForeignKeyViolation, match="READ COMMITTED"):
                deleter.execute("DELETE FROM reconciliation_runs WHERE id = 'recon_1'")
            deleter.rollback()
        with psycopg.connect(u, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM reconciliation_items").fetchone() == (2,)
            conn.execute("CREATE TEMPORARY TABLE reconciliation_items (run_id text)")
            with pytest.raises(psycopg.errors.ForeignKeyViolation, match="still has items"):
                conn.execute("DELETE FROM reconciliation_runs WHERE id = 'recon_1'")
            conn.execute("CREATE TEMPORARY TABLE reconciliation_runs (id text)")
            conn.execute("INSERT INTO reconciliation_runs VALUES ('recon_ghost')")
            with pytest.raises(psycopg.errors.ForeignKeyViolation, match="recon_ghost"):
                conn.execute(ORPHAN.replace("reconciliation_items", "public.reconciliation_items")
                             .replace("recon_nope", "recon_ghost"))
