"""Stripe's wire details: the request that first used an Idempotency-Key, and whether an
endpoint's deliveries also carry ``Stripe-Signature``.

Revision ID: stripe_wire_request_ids
Revises: house_db_sql_versions

- ``idempotency_keys.request_id``: the ``req_…`` id of the request that claimed the key, so
  a replay answers ``Original-Request: <it>`` next to its own ``Request-Id``, as Stripe.
  Null for keys claimed before this migration.
- ``webhook_endpoints.stripe_signature``: deliveries carry the signature under
  ``Stripe-Signature`` too (on by default), so Stripe's SDK verifiers work unmodified.
- ``request_logs``: merchant requests answered with an error, read back through an error's
  ``request_log_url`` (GET /v1/request_logs/{req_id}); expired after 30 days.

kassa_apply's claim_idempotency stores ``request_id``: that is in db/sql/apply.sql (the
repeatable source of kassa_apply); downgrading restores 0008's body, which does not name the
column, and forgets the file's recorded hash so the next upgrade re-creates it.
"""

from importlib import import_module

from alembic import op

revision = "stripe_wire_request_ids"
down_revision = "house_db_sql_versions"

SCHEMA = r"""
ALTER TABLE idempotency_keys ADD COLUMN request_id text;
ALTER TABLE webhook_endpoints ADD COLUMN stripe_signature boolean NOT NULL DEFAULT true;
CREATE TABLE request_logs (
    id              text PRIMARY KEY,          -- req_…, the answer's Request-Id
    merchant_id     text NOT NULL,             -- no foreign key: a log row locks nothing
    method          text NOT NULL,
    path            text NOT NULL,
    status          integer NOT NULL,
    idempotency_key text,
    error           jsonb,                     -- the error object answered
    created         bigint NOT NULL
);
CREATE INDEX request_logs_created ON request_logs (created);
"""

DOWNGRADE_SCHEMA = r"""
DROP TABLE request_logs;
ALTER TABLE webhook_endpoints DROP COLUMN stripe_signature;
ALTER TABLE idempotency_keys DROP COLUMN request_id;
"""

def _previous_apply() -> str:
    sql: str = import_module("kassa.db.migrations.versions.0008_attempts_watched").UPGRADE
    return sql


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute(_previous_apply())  # first: its body does not know the column dropped below
    op.execute("DELETE FROM kassa_sql_versions WHERE name = 'apply.sql'")
    op.execute(DOWNGRADE_SCHEMA)
