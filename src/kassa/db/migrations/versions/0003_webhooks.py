"""Merchant webhooks: endpoints, one delivery row per (event, endpoint), one row per attempt.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"

# Fan-out is a statement-level trigger on the outbox: the deliveries commit with the event
# (a crash can lose neither), and kassa_apply's one INSERT per unit of work fires it once.
# For a merchant without endpoints it costs the trigger call and one probe of a small
# partial index: 5-20 µs of PostgreSQL CPU per unit of work's outbox write (kassa_apply)
# on the 2-core machine, within the noise of a whole payment (python -m bench.webhooks,
# phase 1). Row-level, WHEN-guarded and in-kassa_apply variants measured no cheaper.
#
# webhook_deliveries carries no foreign key to webhook_endpoints: every insert would take
# a KEY SHARE lock on the endpoint row, which every payment of a busy merchant shares
# (PERFORMANCE.md, hot rows). Deleting an endpoint deletes its deliveries; the sender
# removes the few a concurrent payment may still add (endpoint gone at claim time).
UPGRADE = r"""
CREATE TABLE webhook_endpoints (
    seq                        bigint GENERATED ALWAYS AS IDENTITY,
    id                         text PRIMARY KEY,
    merchant_id                text NOT NULL REFERENCES merchants(id),
    url                        text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    description                text CHECK (length(description) <= 5000),
    metadata                   jsonb NOT NULL DEFAULT '{}',
    enabled_events             text[] NOT NULL CHECK (cardinality(enabled_events) >= 1),
    status                     text NOT NULL CHECK (status IN ('enabled', 'disabled')),
    secret                     text NOT NULL,              -- signs; returned only at creation
    previous_secret            text,                       -- still signs during a rotation
    previous_secret_expires_at timestamptz,
    created                    bigint NOT NULL,
    CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL))
);
CREATE INDEX webhook_endpoints_merchant_seq ON webhook_endpoints (merchant_id, seq);
-- the fan-out trigger's probe
CREATE INDEX webhook_endpoints_enabled ON webhook_endpoints (merchant_id)
    WHERE status = 'enabled';

CREATE TABLE webhook_deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id      text NOT NULL,
    merchant_id      text NOT NULL,
    event_id         text NOT NULL,
    event_type       text NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN (
                       'pending',      -- not attempted yet
                       'retrying',     -- failed; next_attempt_at is the scheduled retry
                       'delivered',    -- a 2xx answer arrived within the timeout
                       'dead')),       -- retries exhausted; only a redelivery sends it again
    attempt_count    integer NOT NULL DEFAULT 0,
    failures         integer NOT NULL DEFAULT 0,    -- consecutive, since scheduled_at
    -- Due when <= now(). A sender that claims the row pushes it to the end of its lease, so
    -- a sender that dies mid-request hands the delivery to the next one. NULL while the
    -- delivery is finished, or parked because its endpoint is disabled.
    next_attempt_at  timestamptz DEFAULT now(),
    scheduled_at     timestamptz NOT NULL DEFAULT now(),  -- the retry window starts here
    last_attempt_at  timestamptz,
    last_status_code integer,
    last_duration_ms integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    UNIQUE (event_id, endpoint_id),
    CHECK (status IN ('pending', 'retrying') OR next_attempt_at IS NULL),
    CHECK ((status IN ('delivered', 'dead')) = (completed_at IS NOT NULL))
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
CREATE INDEX webhook_deliveries_parked ON webhook_deliveries (endpoint_id)
    WHERE next_attempt_at IS NULL AND status IN ('pending', 'retrying');
CREATE INDEX webhook_deliveries_dead ON webhook_deliveries (completed_at)
    WHERE status = 'dead';

CREATE TABLE webhook_attempts (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id      bigint NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempted_at     timestamptz NOT NULL,
    succeeded        boolean NOT NULL,
    status_code      integer,                 -- NULL: no HTTP answer (timeout, refused …)
    duration_ms      integer NOT NULL CHECK (duration_ms >= 0),
    error            text,
    response_excerpt text
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);

-- The EXISTS probe first: for a merchant without endpoints (most payments) it spares the
-- INSERT's executor start-up (opening webhook_deliveries and its indexes).
CREATE FUNCTION kassa_fan_out_webhooks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_events e JOIN webhook_endpoints w
                 ON w.merchant_id = e.merchant_id AND w.status = 'enabled') THEN
        INSERT INTO webhook_deliveries (endpoint_id, merchant_id, event_id, event_type)
        SELECT w.id, e.merchant_id, e.id, e.type
          FROM new_events e
          JOIN webhook_endpoints w ON w.merchant_id = e.merchant_id AND w.status = 'enabled'
         WHERE e.type = ANY (w.enabled_events) OR '*' = ANY (w.enabled_events);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER events_fan_out_webhooks AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION kassa_fan_out_webhooks();
"""

DOWNGRADE = r"""
DROP TRIGGER events_fan_out_webhooks ON events;
DROP FUNCTION kassa_fan_out_webhooks();
DROP TABLE webhook_attempts, webhook_deliveries, webhook_endpoints;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
