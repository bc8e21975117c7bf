"""Checkpointed balances: a balance read is a checkpoint plus the entries after it.

Revision ID: ledger_balance_checkpoints
Revises: reconcile_daily_pulls

- ``ledger_checkpoint_runs``: one row per checkpoint pass (ledger/checkpoints.py). A run
  covers every ledger entry with ``id <= position`` and summed the entries in
  ``(previous, position]``; runs form one chain (``previous`` is unique), so two writers can
  never both extend the same run. ``as_of`` is the latest posting time of any covered entry
  and ``earliest_posted`` the earliest in the run's own interval: together they let a
  point-in-time read pick a checkpoint and find the few later intervals that still hold
  postings at or before its moment.
- ``ledger_checkpoints``: per (account, currency, layer) the balance as of a run's position,
  written only for accounts whose balance that run changed (so the hot fee account gets one
  row per run, never one per payment, and no payment ever locks it).
- The account index becomes ``(account, id)``: the tail after a checkpoint is a range scan
  of one account's newest entries (index-only, with currency, layer and amount included)
  instead of every entry the account ever had. It replaces the old index, so a posting
  still maintains the same number of indexes.

Both tables are derived data: `kassa ledger verify` recomputes every checkpoint from the
journal (ledger/invariants.py).
"""

from alembic import op

revision = "ledger_balance_checkpoints"
down_revision = "reconcile_daily_pulls"

UPGRADE = r"""
CREATE TABLE ledger_checkpoint_runs (
    position        bigint PRIMARY KEY,       -- covers ledger_entries.id <= position
    previous        bigint NOT NULL UNIQUE,   -- the run it extends (0: the first)
    as_of           timestamptz,              -- no covered entry was posted later (null: none)
    earliest_posted timestamptz,              -- earliest posting in (previous, position]
    entries         bigint NOT NULL,          -- entries in (previous, position]
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (position > previous AND previous >= 0)
);
-- as_of only grows with position: a point-in-time read finds its checkpoint by as_of
CREATE INDEX ledger_checkpoint_runs_as_of ON ledger_checkpoint_runs (as_of);

CREATE TABLE ledger_checkpoints (
    account  text NOT NULL,
    currency text NOT NULL,
    layer    text NOT NULL,
    position bigint NOT NULL REFERENCES ledger_checkpoint_runs (position),
    balance  bigint NOT NULL,                 -- sum of the account's entries with id <= position
    PRIMARY KEY (account, currency, layer, position)
);

CREATE INDEX ledger_entries_account_position ON ledger_entries (account, id)
    INCLUDE (currency, layer, amount);
DROP INDEX ledger_entries_account;
"""

DOWNGRADE = r"""
CREATE INDEX ledger_entries_account ON ledger_entries (account, currency, layer) INCLUDE (amount);
DROP INDEX ledger_entries_account_position;
DROP TABLE ledger_checkpoints, ledger_checkpoint_runs;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
