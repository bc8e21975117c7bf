"""Migration perf_unused_indexes: the two indexes no query reads are gone, the guarantees on
attempts stay, and a downgrade puts them back."""

from __future__ import annotations

import psycopg
from alembic import command

from kassa.db.migrate import alembic_config, upgrade
from tests.support.databases import empty_database


def _indexes(u: str) -> set[str]:
    with psycopg.connect(u) as conn:
        return {r[0] for r in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename IN ('events', 'attempts')")}


def test_unused_indexes_dropped_and_restored_on_downgrade(server_url):
    with empty_database(server_url, "kassa_perf_indexes") as u:
        upgrade(u)
        after = _indexes(u)
        assert not {"events_object", "attempts_payment"} & after
        assert {"attempts_one_authorization", "attempts_one_capture", "events_merchant_seq",
                "events_xid_seq"} <= after
        command.downgrade(alembic_config(u), "money_out_payouts")
        assert {"events_object", "attempts_payment"} <= _indexes(u)
        upgrade(u)
        assert not {"events_object", "attempts_payment"} & _indexes(u)
