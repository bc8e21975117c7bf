"""Migration stripe_intents_intent_fields and kassa_apply's new columns on a database that
already holds intents, and against replicas of the previous release during a rolling deploy:
every intent gets an unguessable client_secret, and an op in the old shape erases nothing."""

from __future__ import annotations

import json
import re

import psycopg

from kassa.db.migrate import upgrade
from tests.support.databases import empty_database

SECRET = re.compile(r"^(pi_\w+)_secret_[0-9a-f]{64}$")
# every key the previous release's _payment_row sent (none of the new ones)
OLD_ROW = {"merchant_id": "acct_m", "amount": 5000, "currency": "usd",
           "status": "requires_payment_method", "capture_method": "automatic", "created": 0,
           "payment_method": None, "description": None, "metadata": {},
           "amount_capturable": 0, "amount_received": 0, "amount_refunded": 0,
           "last_payment_error": None, "next_action": None, "canceled_at": None,
           "cancellation_reason": None, "latest_charge": None, "psp": None,
           "psp_reference": None, "pending_attempt_id": None}


def _apply(conn: psycopg.Connection, op: str, row: dict[str, object]) -> None:
    conn.execute("SELECT kassa_apply(%s::jsonb)", (json.dumps([{"op": op, "row": row}]),))


def test_intents_before_and_ops_from_older_replicas_keep_their_fields(server_url):
    with empty_database(server_url, "kassa_intent_fields") as url:
        upgrade(url, "house_db_sql_versions")
        with psycopg.connect(url, autocommit=True) as conn:
            for pid in ("pi_a", "pi_b"):
                conn.execute("INSERT INTO payment_intents (id, merchant_id, amount, currency,"
                             " status, capture_method, created) VALUES (%s, 'acct_m', 5000,"
                             " 'usd', 'requires_payment_method', 'manual', 0)", (pid,))
        upgrade(url)
        with psycopg.connect(url, autocommit=True) as conn:
            rows = dict(conn.execute("SELECT id, client_secret FROM payment_intents").fetchall())
            assert {SECRET.match(s)[1] for s in rows.values()} == {"pi_a", "pi_b"}  # type: ignore[index]
            assert rows["pi_a"] != rows["pi_b"]
            # an insert in the previous release's shape still gets a secret and defaults
            _apply(conn, "insert_payment", {"id": "pi_old", **OLD_ROW})
            secret, method = conn.execute(
                "SELECT client_secret, confirmation_method FROM payment_intents"
                " WHERE id = 'pi_old'").fetchone()  # type: ignore[misc]
            assert SECRET.match(secret) and method == "automatic"
            # this release's insert, then an update in the old shape: nothing is erased
            _apply(conn, "insert_payment", {
                "id": "pi_new", **OLD_ROW, "client_secret": "pi_new_secret_x",
                "receipt_email": "a@b.co", "statement_descriptor_suffix": "SHOP",
                "shipping": {"name": "Ada"}, "setup_future_usage": "off_session",
                "payment_method_options": {"card": {"capture_method": "manual"}}})
            _apply(conn, "update_payment", {**OLD_ROW, "id": "pi_new", "version": 0,
                                            "description": "from an old replica"})
            row = conn.execute(
                "SELECT client_secret, receipt_email, statement_descriptor_suffix, shipping,"
                " setup_future_usage, payment_method_options, description, version"
                " FROM payment_intents WHERE id = 'pi_new'").fetchone()
            assert row == ("pi_new_secret_x", "a@b.co", "SHOP", {"name": "Ada"},
                           "off_session", {"card": {"capture_method": "manual"}},
                           "from an old replica", 1)
            # and this release's update writes them, unset ones as null
            _apply(conn, "update_payment", {**OLD_ROW, "id": "pi_new", "version": 1,
                                            "amount": 700, "receipt_email": None,
                                            "shipping": None})
            row = conn.execute("SELECT amount, receipt_email, shipping, statement_descriptor_"
                               "suffix FROM payment_intents WHERE id = 'pi_new'").fetchone()
            assert row == (700, None, None, "SHOP")
