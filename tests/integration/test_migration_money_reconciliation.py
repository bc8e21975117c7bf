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


SETTLED = ["INSERT INTO ledger_transactions (kind, merchant_id, source_id)"
           " VALUES ('settlement', 'platform', 'recon_1:usd')",
           "INSERT INTO ledger_entries (transaction_id, account, currency, layer, amount)"
           " SELECT id, a, 'usd', 'posted', v FROM ledger_transactions,"
           " (VALUES ('bank:cash', 100), ('psp:simulator:receivable', -100)) e(a, v)"]
CARRIED = ["INSERT INTO payout_carries VALUES ('acct_1', 'usd', 1)"]
HELD = ["INSERT INTO payouts (id, merchant_id, amount, currency, status, balance_transaction,"
        " arrival_date, created, review_reason) VALUES ('po_1', 'acct_1', 1000, 'usd',"
        " 'in_transit', 'txn_1', 0, 0, 'the rail answered 900, not 1000')"]


@pytest.mark.parametrize("money", [SETTLED, CARRIED, HELD], ids=["settled", "carried", "held"])
def test_the_downgrade_refuses_to_drop_money(server_url, money):
    with empty_database(server_url, "kassa_recon_keep") as u:
        upgrade(u)
        with psycopg.connect(u) as conn:  # one transaction (a ledger posting is balanced)
            for statement in money:
                conn.execute(statement)
        with pytest.raises(Exception, match="money_reconciliation downgrade refused"):
            command.downgrade(alembic_config(u), "money_reconciliation-1")
        with psycopg.connect(u) as conn:  # nothing dropped
            assert conn.execute("SELECT to_regclass('reconciliation_runs'),"
                                " to_regclass('payout_carries'), count(*) FROM payout_carries"
                                ).fetchone() == ("reconciliation_runs", "payout_carries",
                                                 1 if money is CARRIED else 0)
        if money is not SETTLED:  # once it is settled otherwise, the downgrade goes through
            with psycopg.connect(u) as conn:
                conn.execute("DELETE FROM payout_carries")
                conn.execute("UPDATE payouts SET review_reason = NULL,"
                             " review_resolution = 'paid 900 by hand'")
            command.downgrade(alembic_config(u), "money_reconciliation-1")
