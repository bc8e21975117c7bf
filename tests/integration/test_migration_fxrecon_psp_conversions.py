"""Migration fxrecon_psp_conversions: a settlement row the PSP converted carries its
settlement currency, settled gross (same sign as the gross) and rate, all or none; the
downgrade is refused while such a row exists, and works (and upgrades again) once none
does. ``expected_settled`` (a settled-side amount_mismatch) only on a converted row that is
not posted."""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy.exc
from alembic import command

from kassa.db.migrate import alembic_config, upgrade
from tests.support.databases import empty_database

ITEM = ("INSERT INTO reconciliation_items (run_id, row_number, category, psp_reference,"
        " gross, fee, currency, settlement_currency, settlement_gross, exchange_rate)"
        " VALUES ('recon_fx', %s, 'charge', %s, %s, 150, 'eur', %s, %s, %s)")


def test_conversions_are_checked_and_the_downgrade_refused_while_needed(server_url):
    with empty_database(server_url, "kassa_fxrecon_migration") as u:
        upgrade(u)
        with psycopg.connect(u, autocommit=True) as conn:
            conn.execute("INSERT INTO reconciliation_runs (id, psp, format, source_name,"
                         " file_sha256, status, created) VALUES ('recon_fx', 'adyen',"
                         " 'adyen', 'f', repeat('b', 64), 'completed', 0)")
            conn.execute(ITEM, (1, "a1", 10_000, "usd", 10_842, "1.0842"))
            conn.execute(ITEM, (2, "a2", 500, None, None, None))  # not converted
            for n, bad in enumerate((
                    (10_000, "usd", None, "1.0842"),  # a rate without the settled gross
                    (10_000, None, 10_842, "1.0842"),  # no settlement currency
                    (10_000, "usd", 10_842, None),  # no rate
                    (10_000, "eur", 10_000, "1"),  # "converted" into its own currency
                    (10_000, "usd", -10_842, "1.0842"),  # the other sign
                    (10_000, "usd", 10_842, "0")), start=3):  # a rate that is no rate
                with pytest.raises(psycopg.errors.CheckViolation):
                    conn.execute(ITEM, (n, f"a{n}", *bad))
            expected = ("UPDATE reconciliation_items SET expected_settled = 10900,"
                        " posted = %s WHERE row_number = %s")
            for posted, row in ((True, 1), (False, 2)):  # posted; not converted
                with pytest.raises(psycopg.errors.CheckViolation):
                    conn.execute(expected, (posted, row))
            conn.execute(expected, (False, 1))
            conn.execute("UPDATE reconciliation_items SET expected_settled = NULL")
        with pytest.raises(sqlalchemy.exc.DBAPIError, match="the PSP converted"):
            command.downgrade(alembic_config(u), "jp_payout_destinations")
        with psycopg.connect(u, autocommit=True) as conn:
            assert conn.execute("SELECT settlement_gross, exchange_rate::text FROM"
                                " reconciliation_items WHERE settlement_currency IS NOT NULL"
                                ).fetchall() == [(10_842, "1.0842")]
            conn.execute("DELETE FROM reconciliation_items WHERE row_number = 1")
        command.downgrade(alembic_config(u), "jp_payout_destinations")
        with psycopg.connect(u) as conn:
            assert not conn.execute(
                "SELECT 1 FROM information_schema.columns WHERE table_name ="
                " 'reconciliation_items' AND column_name IN ('settlement_currency',"
                " 'settlement_gross', 'exchange_rate', 'expected_settled')").fetchall()
            assert conn.execute("SELECT count(*) FROM reconciliation_items").fetchone() == (1,)
        upgrade(u)
