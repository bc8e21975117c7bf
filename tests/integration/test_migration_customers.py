"""The customers schema guards what it can on its own: a card or an intent names only a
customer of its own merchant; and the migration goes down and up again (kassa_apply, which
knows the intent's customer, is re-created on the way up)."""

from __future__ import annotations

import psycopg
import pytest
from alembic import command
from alembic.script import ScriptDirectory

from kassa.db.migrate import alembic_config, upgrade
from tests.support.databases import empty_database


@pytest.fixture(scope="module")
def url(server_url):
    with empty_database(server_url, "kassa_customers") as u:
        upgrade(u)
        with psycopg.connect(u, autocommit=True) as conn:
            for m in ("acct_a", "acct_b"):
                conn.execute("INSERT INTO merchants (id, name, created) VALUES (%s, 'm', 0)",
                             (m,))
            conn.execute("INSERT INTO customers (id, merchant_id, created)"
                         " VALUES ('cus_a', 'acct_a', 0)")
            conn.execute(
                "INSERT INTO kassa_vault.payment_methods (id, merchant_id, brand, last4,"
                " exp_month, exp_year, funding, fingerprint, checks, billing_details, created)"
                " VALUES ('pm_b', 'acct_b', 'visa', '4242', 12, 2034, 'credit', 'f', '{}',"
                " '{}', 0)")
        yield u


def test_a_card_belongs_only_to_a_customer_of_its_merchant(url):
    with psycopg.connect(url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute("UPDATE kassa_vault.payment_methods SET customer = 'cus_a'"
                         " WHERE id = 'pm_b'")
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute("UPDATE kassa_vault.payment_methods SET customer = 'cus_nope'"
                         " WHERE id = 'pm_b'")


def test_an_intent_names_only_a_customer_of_its_merchant(url):
    with psycopg.connect(url, autocommit=True) as conn:
        row = {"id": "pi_x", "merchant_id": "acct_b", "amount": 100, "currency": "usd",
               "status": "requires_payment_method", "capture_method": "automatic",
               "created": 0, "customer": "cus_a"}
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute("SELECT kassa_apply(%s::jsonb)", (psycopg.types.json.Json(
                [{"op": "insert_payment", "row": row}]),))
        conn.execute("SELECT kassa_apply(%s::jsonb)", (psycopg.types.json.Json(
            [{"op": "insert_payment", "row": {**row, "merchant_id": "acct_a"}}]),))
        assert conn.execute("SELECT customer FROM payment_intents WHERE id = 'pi_x'"
                            ).fetchone() == ("cus_a",)


def test_down_and_up_again(server_url):
    with empty_database(server_url, "kassa_customers_down") as u:
        upgrade(u)
        cfg = alembic_config(u)
        command.downgrade(cfg, ScriptDirectory.from_config(cfg).get_revision(
            "checkout_customers").down_revision)
        with psycopg.connect(u) as conn:
            assert conn.execute("SELECT to_regclass('customers')").fetchone() == (None,)
        upgrade(u)
        with psycopg.connect(u) as conn:
            assert conn.execute("SELECT to_regclass('customers')").fetchone() == ("customers",)
