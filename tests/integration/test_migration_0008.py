"""Migration 0008 on a database that already holds money in flight: nothing that waited
on the PSP before the upgrade may end up unwatched after it."""

from __future__ import annotations

import psycopg

from kassa.db.migrate import upgrade
from tests.support.databases import empty_database

MERCHANT = "acct_m"


def _seed(conn: psycopg.Connection) -> None:
    def payment(pid: str, status: str, **extra: object) -> None:
        cols = {"id": pid, "merchant_id": MERCHANT, "amount": 5000, "currency": "usd",
                "status": status, "capture_method": "manual", "created": 0, **extra}
        names = ", ".join(cols)
        marks = ", ".join(["%s"] * len(cols))
        conn.execute(f"INSERT INTO payment_intents ({names}) VALUES ({marks})",
                     list(cols.values()))

    def attempt(aid: str, pid: str, operation: str, status: str, capture: bool = False,
                refund: str | None = None) -> None:
        conn.execute(
            "INSERT INTO attempts (id, merchant_id, payment_intent_id, refund_id, operation,"
            " psp, status, amount, currency, capture) VALUES"
            " (%s, %s, %s, %s, %s, 'simulator', %s, 5000, 'usd', %s)",
            (aid, MERCHANT, pid, refund, operation, status, capture))

    payment("pi_open", "processing", latest_charge="ch_open")
    attempt("ch_open", "pi_open", "authorize", "unknown")
    payment("pi_3ds", "requires_action", latest_charge="ch_3ds")
    attempt("ch_3ds", "pi_3ds", "authorize", "requires_action")
    payment("pi_held", "requires_capture", latest_charge="ch_held", amount_capturable=5000)
    attempt("ch_held", "pi_held", "authorize", "succeeded")
    payment("pi_capturing", "processing", latest_charge="ch_cap", amount_capturable=5000)
    attempt("ch_cap", "pi_capturing", "authorize", "succeeded")
    attempt("att_cap", "pi_capturing", "capture", "unknown")
    payment("pi_done", "succeeded", latest_charge="ch_done", amount_received=5000,
            amount_refunded=1000)
    attempt("ch_done", "pi_done", "authorize", "succeeded", capture=True)
    conn.execute("INSERT INTO refunds (id, merchant_id, payment_intent_id, amount, currency,"
                 " status, attempt_id, created) VALUES ('re_pending', %s, 'pi_done', 1000,"
                 " 'usd', 'pending', 'att_refund', 0)", (MERCHANT,))
    attempt("att_refund", "pi_done", "refund", "succeeded", refund="re_pending")


def test_money_in_flight_before_0008_is_watched_after_it(server_url):
    with empty_database(server_url, "kassa_mig") as url:
        upgrade(url, "0007_dispute_withdrawn")
        with psycopg.connect(url, autocommit=True) as conn:
            _seed(conn)
        upgrade(url)
        with psycopg.connect(url) as conn:
            rows = dict(conn.execute(
                "SELECT id, status || ':' || (next_check_at IS NOT NULL) FROM attempts"
            ).fetchall())
    assert rows == {
        "ch_open": "unknown:true",  # asked at the PSP
        "ch_3ds": "requires_action:true",  # polled, then expired
        "ch_held": "succeeded:true",  # the hold's expiry
        "ch_cap": "succeeded:true",  # a hold whose capture is in flight
        "att_cap": "unknown:true",
        "ch_done": "succeeded:false",  # captured: nothing left to wait for
        "att_refund": "pending:true",  # a refund the PSP answered pending
    }
