"""Migration payoutbits_chargeback_reversals: a report row may be a won dispute's reversal
(and still nothing else); the downgrade is refused while such a row exists, and works (and
upgrades again) once none does."""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy.exc
from alembic import command

from kassa.db.migrate import alembic_config, upgrade
from tests.support.databases import empty_database

RUN = ("INSERT INTO reconciliation_runs (id, psp, format, source_name, file_sha256, status,"
       " created) VALUES ('recon_1', 'simulator', 'simulator', 'day.csv', %s, 'completed', 0)")
ITEM = ("INSERT INTO reconciliation_items (run_id, row_number, category, gross, fee, currency)"
        " VALUES ('recon_1', %s, %s, 8000, -1500, 'usd')")


def test_reversal_rows_are_allowed_and_the_downgrade_refused_while_any(server_url):
    with empty_database(server_url, "kassa_reversals_migration") as u:
        upgrade(u)
        with psycopg.connect(u, autocommit=True) as conn:
            conn.execute(RUN, ("0" * 64,))
            conn.execute(ITEM, (1, "chargeback_reversal"))
            with pytest.raises(psycopg.errors.CheckViolation):
                conn.execute(ITEM, (2, "reversal"))
        with pytest.raises(sqlalchemy.exc.DBAPIError, match="chargeback reversal row"):
            command.downgrade(alembic_config(u), "payoutbits_carry_backfill")
        with psycopg.connect(u, autocommit=True) as conn:
            conn.execute("DELETE FROM reconciliation_items")
        command.downgrade(alembic_config(u), "payoutbits_carry_backfill")
        with psycopg.connect(u, autocommit=True) as conn:
            with pytest.raises(psycopg.errors.CheckViolation):
                conn.execute(ITEM, (3, "chargeback_reversal"))
            conn.execute(ITEM, (4, "chargeback"))
        upgrade(u)
        with psycopg.connect(u, autocommit=True) as conn:
            conn.execute(ITEM, (5, "chargeback_reversal"))
