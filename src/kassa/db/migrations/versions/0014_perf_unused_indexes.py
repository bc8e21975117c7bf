"""Drop two indexes that every payment writes and no query reads (PERFORMANCE.md: work per
payment).

Revision ID: perf_unused_indexes
Revises: money_out_payouts

- ``events_object`` (events.object_id): three entries per card payment (one per event);
  events are read by id, by (merchant_id, seq) for lists and by (xid, seq) for the relay,
  never by object.
- ``attempts_payment`` (attempts.payment_intent_id): two entries per payment (the insert
  and step 3's update, which changes next_check_at and so is never HOT); attempts are read
  by id, by next_check_at and by status. The unique partial indexes on payment_intent_id
  (one successful authorisation, one capture per payment) stay: they are guarantees.

Together: five B-tree insertions and ~330 B of WAL less per create+confirm.
"""

from alembic import op

revision = "perf_unused_indexes"
down_revision = "money_out_payouts"


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS events_object; DROP INDEX IF EXISTS attempts_payment;")


def downgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS events_object ON events (object_id);"
               " CREATE INDEX IF NOT EXISTS attempts_payment ON attempts (payment_intent_id);")
