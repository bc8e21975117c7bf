"""Outbox relay: each relay's stored position in the event stream, and the index it reads by.

Revision ID: 0005
Revises: 0002
"""

from alembic import op

revision = "0005"
down_revision = "0002"

# The relay reads events in (xid, seq) order, only below the oldest running transaction
# (pg_snapshot_xmin): see kassa/events/relay.py. Its position is moved only after the broker
# acknowledged everything up to it, so a crash republishes (at-least-once), never skips.
UPGRADE = r"""
CREATE INDEX events_xid_seq ON events (xid, seq);

CREATE TABLE relay_positions (
    name        text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 100),
    xid         xid8 NOT NULL DEFAULT '0',   -- last published event's transaction id
    seq         bigint NOT NULL DEFAULT 0,   -- and its seq; the cursor is (xid, seq)
    published   bigint NOT NULL DEFAULT 0 CHECK (published >= 0),  -- events sent, total
    updated_at  timestamptz NOT NULL DEFAULT now()
);
"""

DOWNGRADE = r"""
DROP TABLE relay_positions;
DROP INDEX events_xid_seq;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
