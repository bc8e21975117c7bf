"""Migration 0021 (adyen_modification_refs): a modification's own PSP reference is unique
per PSP, a capture reversal is a ledger kind, the payment carries the hold posted again;
it goes down and up again, and the downgrade refuses while a capture reversal is posted."""

from __future__ import annotations

import psycopg
import pytest
from alembic import command

from kassa.db.migrate import alembic_config, upgrade
from tests.support.databases import empty_database

PAYMENT = ("INSERT INTO merchants (id, name, created) VALUES ('acct_a', 'm', 0);"
           " INSERT INTO payment_intents (id, merchant_id, amount, currency, status,"
           " capture_method, created) VALUES ('pi_a', 'acct_a', 1000, 'eur',"
           " 'requires_payment_method', 'manual', 0)")
ATTEMPT = ("INSERT INTO attempts (id, merchant_id, payment_intent_id, operation, psp, status,"
           " amount, currency, operation_reference) VALUES (%s, 'acct_a', 'pi_a', 'capture',"
           " %s, 'pending', 1000, 'eur', %s)")
REVERSAL = ["INSERT INTO ledger_transactions (kind, merchant_id, source_id)"
            " VALUES ('capture_reversal', 'acct_a', 'att_1')",
            "INSERT INTO ledger_entries (transaction_id, account, currency, layer, amount)"
            " SELECT id, a, 'eur', 'posted', v FROM ledger_transactions,"
            " (VALUES ('merchant:acct_a:pending', 1000), ('psp:adyen:receivable', -1000))"
            " e(a, v)"]


def test_modification_references_are_unique_per_psp_and_it_goes_down_and_up(server_url):
    with empty_database(server_url, "kassa_modrefs") as u:
        upgrade(u)
        with psycopg.connect(u, autocommit=True) as conn:
            for statement in PAYMENT.split(";"):
                conn.execute(statement)
            conn.execute(ATTEMPT, ("att_1", "adyen", "8815000000000001"))
            conn.execute(ATTEMPT, ("att_2", "adyen-eu", "8815000000000001"))  # another PSP
            conn.execute(ATTEMPT, ("att_3", "adyen", None))
            conn.execute(ATTEMPT, ("att_4", "adyen", None))  # many without one
            with pytest.raises(psycopg.errors.UniqueViolation):
                conn.execute(ATTEMPT, ("att_5", "adyen", "8815000000000001"))
            conn.execute("UPDATE payment_intents SET hold_ref = 'att_1' WHERE id = 'pi_a'")
            (index,) = conn.execute("SELECT indexdef FROM pg_indexes"
                                    " WHERE indexname = 'attempts_operation_reference'"
                                    ).fetchone() or ("",)
        # the notification's lookup (psp, operation_reference) is one index probe
        assert "UNIQUE" in index and "(psp, operation_reference)" in index
        command.downgrade(alembic_config(u), "vault_jsonb_objects")
        with psycopg.connect(u) as conn:
            columns = {r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_name IN ('attempts', 'payment_intents')").fetchall()}
        assert not {"operation_reference", "hold_ref"} & columns
        upgrade(u)
        with psycopg.connect(u) as conn:  # one transaction: the posting is balanced
            for statement in REVERSAL:
                conn.execute(statement)
            conn.commit()


def test_the_downgrade_refuses_while_a_capture_reversal_is_posted(server_url):
    with empty_database(server_url, "kassa_modrefs_keep") as u:
        upgrade(u)
        with psycopg.connect(u) as conn:
            for statement in REVERSAL:
                conn.execute(statement)
            conn.commit()
        with pytest.raises(Exception, match="capture reversals are posted"):
            command.downgrade(alembic_config(u), "vault_jsonb_objects")
        with psycopg.connect(u) as conn:
            assert conn.execute("SELECT count(*) FROM ledger_transactions"
                                " WHERE kind = 'capture_reversal'").fetchone() == (1,)
