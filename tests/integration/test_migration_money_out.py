"""The payouts schema guards money on its own: one automatic payout per merchant, currency
and period; only the state machine's moves; Stripe's failure codes; the payout ledger kinds
post once per payout; and the migration goes down and up again."""

from __future__ import annotations

import psycopg
import pytest
from alembic import command

from kassa.db.migrate import alembic_config, upgrade
from kassa.domain.payouts import TRANSITIONS, FailureCode, PayoutStatus
from tests.support.databases import empty_database

M = "acct_payouts"


@pytest.fixture(scope="module")
def url(server_url):
    with empty_database(server_url, "kassa_payouts") as u:
        upgrade(u)
        with psycopg.connect(u, autocommit=True) as conn:
            conn.execute("INSERT INTO merchants (id, name, created) VALUES (%s, 'm', 0)", (M,))
        yield u


def insert_payout(conn: psycopg.Connection, pid: str, *, period: str | None = None,
                  status: str = "pending", currency: str = "eur") -> None:
    code = "declined" if status == "failed" else None
    reversal = "txn_r" if status in ("failed", "canceled") else None
    conn.execute(
        "INSERT INTO payouts (id, merchant_id, amount, currency, status, automatic,"
        " period_key, balance_transaction, failure_code, failure_balance_transaction,"
        " arrival_date, created) VALUES (%s, %s, 100, %s, %s, %s, %s, 'txn_' || %s, %s, %s,"
        " 0, 0)", (pid, M, currency, status, period is not None, period, pid, code, reversal))


def test_one_automatic_payout_per_period(url):
    with psycopg.connect(url, autocommit=True) as conn:
        insert_payout(conn, "po_p1", period="2027-01-15")
        insert_payout(conn, "po_p2", period="2027-01-15", currency="usd")  # another currency
        with pytest.raises(psycopg.errors.UniqueViolation):
            insert_payout(conn, "po_p3", period="2027-01-15")
        conn.execute("INSERT INTO payout_periods VALUES (%s, 'eur', '2027-01-16', NULL, 0)",
                     (M,))
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO payout_periods VALUES (%s, 'eur', '2027-01-16', NULL, 0)",
                         (M,))


@pytest.mark.parametrize("src", list(PayoutStatus))
def test_only_the_state_machines_moves(url, src):
    with psycopg.connect(url) as conn:
        for dst in PayoutStatus:
            if dst is src:
                continue
            with conn.transaction(force_rollback=True):
                insert_payout(conn, "po_move", status=src.value)
                sets = ["status = %s"]
                sets.append("failure_code = 'declined'" if dst is PayoutStatus.FAILED
                            else "failure_code = NULL")
                sets.append("failure_balance_transaction = 'txn_r'" if dst in (
                    PayoutStatus.FAILED, PayoutStatus.CANCELED)
                    else "failure_balance_transaction = NULL")
                statement = f"UPDATE payouts SET {', '.join(sets)} WHERE id = 'po_move'"
                if dst in TRANSITIONS[src]:
                    conn.execute(statement, (dst.value,))
                else:
                    with pytest.raises(psycopg.errors.RestrictViolation):
                        conn.execute(statement, (dst.value,))


def test_what_a_payout_pays_never_changes(url):
    with psycopg.connect(url) as conn, conn.transaction(force_rollback=True):
        insert_payout(conn, "po_fixed")
        with pytest.raises(psycopg.errors.RestrictViolation):
            conn.execute("UPDATE payouts SET amount = 1 WHERE id = 'po_fixed'")


def test_failure_codes_are_stripes_and_go_with_failed(url):
    with psycopg.connect(url) as conn:
        for code in FailureCode:
            with conn.transaction(force_rollback=True):
                conn.execute(
                    "INSERT INTO payouts (id, merchant_id, amount, currency, status,"
                    " failure_code, balance_transaction, failure_balance_transaction,"
                    " arrival_date, created) VALUES ('po_f', %s, 100, 'eur', 'failed', %s,"
                    " 'txn_1', 'txn_2', 0, 0)", (M, code.value))
        for bad in ("made_up", None):
            with conn.transaction(force_rollback=True), pytest.raises(
                    psycopg.errors.CheckViolation):
                conn.execute(
                    "INSERT INTO payouts (id, merchant_id, amount, currency, status,"
                    " failure_code, balance_transaction, failure_balance_transaction,"
                    " arrival_date, created) VALUES ('po_f', %s, 100, 'eur', 'failed', %s,"
                    " 'txn_1', 'txn_2', 0, 0)", (M, bad))


def test_payout_kinds_post_once_per_payout(url):
    with psycopg.connect(url) as conn, conn.transaction(force_rollback=True):
        for kind in ("payout", "payout_paid", "payout_failure", "payout_cancel"):
            conn.execute("INSERT INTO ledger_transactions (kind, merchant_id, source_id)"
                         " VALUES (%s, %s, 'po_k')", (kind, M))
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO ledger_transactions (kind, merchant_id, source_id)"
                         " VALUES ('payout', %s, 'po_k')", (M,))


def test_down_and_up_again(server_url):
    with empty_database(server_url, "kassa_payouts_down") as u:
        upgrade(u)
        command.downgrade(alembic_config(u), "stripe_charges_charges")  # the revision before it
        with psycopg.connect(u) as conn:
            assert conn.execute("SELECT to_regclass('payouts')").fetchone() == (None,)
        upgrade(u)
        with psycopg.connect(u) as conn:
            assert conn.execute("SELECT to_regclass('payouts')").fetchone() == ("payouts",)
