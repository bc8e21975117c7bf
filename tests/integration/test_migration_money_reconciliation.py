"""Migration money_reconciliation: down and up again, and what it makes the database refuse
(a negative carry, a settlement posted for a mismatched row, a second posting of one PSP
movement)."""

from __future__ import annotations

import psycopg
import pytest
from alembic import command

from kassa.db.migrate import alembic_config, upgrade
from tests.support.databases import empty_database


def test_down_and_up_again(server_url):
    with empty_database(server_url, "kassa_recon_down") as u:
        upgrade(u)
        command.downgrade(alembic_config(u), "money_reconciliation-1")
        with psycopg.connect(u) as conn:
            assert conn.execute("SELECT to_regclass('reconciliation_runs'),"
                                " to_regclass('payout_carries')").fetchone() == (None, None)
            assert conn.execute("SELECT to_regclass('payouts')").fetchone() == ("payouts",)
        upgrade(u)
        with psycopg.connect(u) as conn:
            assert conn.execute("SELECT to_regclass('reconciliation_runs')").fetchone() == (
                "reconciliation_runs",)


def test_what_the_database_refuses(server_url):
    with empty_database(server_url, "kassa_recon_rules") as u:
        upgrade(u)
        with psycopg.connect(u, autocommit=True) as conn:
            with pytest.raises(psycopg.errors.CheckViolation):
                conn.execute("INSERT INTO payout_carries VALUES ('acct_1', 'usd', -1)")
            conn.execute("INSERT INTO reconciliation_runs (id, psp, format, source_name,"
                         " file_sha256, status, created) VALUES ('recon_1', 'simulator',"
                         " 'simulator', 'f', repeat('a', 64), 'completed', 0)")
            with pytest.raises(psycopg.errors.UniqueViolation):  # one run per file
                conn.execute("INSERT INTO reconciliation_runs (id, psp, format, source_name,"
                             " file_sha256, status, created) VALUES ('recon_2', 'simulator',"
                             " 'simulator', 'g', repeat('a', 64), 'completed', 0)")
            item = ("INSERT INTO reconciliation_items (run_id, row_number, category,"
                    " psp_reference, gross, fee, currency, problem, posted) VALUES"
                    " ('recon_1', %s, 'charge', 'sim_1', 100, 3, 'usd', %s, true)")
            with pytest.raises(psycopg.errors.CheckViolation):  # a mismatch is never posted
                conn.execute(item, (1, "amount_mismatch"))
            conn.execute(item, (2, None))
            with pytest.raises(psycopg.errors.UniqueViolation):  # one movement, one posting
                conn.execute(item, (3, None))
            # the same kassa object, another (or no) PSP reference: still one posting
            matched = ("INSERT INTO reconciliation_items (run_id, row_number, category,"
                       " psp_reference, gross, fee, currency, matched, posted) VALUES"
                       " ('recon_1', %s, 'charge', %s, 100, 3, 'usd', 'pi_1', true)")
            conn.execute(matched, (4, "sim_4"))
            for row, reference in ((5, None), (6, "sim_6")):
                with pytest.raises(psycopg.errors.UniqueViolation):
                    conn.execute(matched, (row, reference))
