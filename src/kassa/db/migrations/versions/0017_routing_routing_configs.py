"""Routing configurations: versioned per merchant, created inactive, one active at a time.

Revision ID: routing_routing_configs
Revises: money_reconciliation (re-chained after the money branch merged)

What protects the routing state here rather than in Python alone:
- ``version`` is unique per merchant (two creations racing cannot both be version 3);
- at most one configuration per merchant is active (a partial unique index), so two
  activations racing leave exactly one;
- a configuration's content never changes after creation (a trigger refuses it): the
  version a payment was routed by means one thing for good. Only ``active`` and
  ``activated_at`` move.
"""

from alembic import op

revision = "routing_routing_configs"
down_revision = "money_reconciliation"

UPGRADE = r"""
CREATE TABLE routing_configs (
    seq            bigint GENERATED ALWAYS AS IDENTITY,
    id             text PRIMARY KEY,
    merchant_id    text NOT NULL REFERENCES merchants(id),
    version        integer NOT NULL CHECK (version >= 1),
    name           text,
    rules          jsonb NOT NULL CHECK (jsonb_typeof(rules) = 'array'),
    default_route  jsonb NOT NULL CHECK (jsonb_typeof(default_route) = 'object'),
    active         boolean NOT NULL DEFAULT false,
    activated_at   bigint,
    created        bigint NOT NULL,
    UNIQUE (merchant_id, version),
    CHECK (NOT active OR activated_at IS NOT NULL)
);
CREATE UNIQUE INDEX routing_configs_one_active ON routing_configs (merchant_id) WHERE active;
CREATE INDEX routing_configs_merchant ON routing_configs (merchant_id, seq);

CREATE FUNCTION routing_configs_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id <> OLD.id OR NEW.merchant_id <> OLD.merchant_id OR NEW.version <> OLD.version
       OR NEW.rules <> OLD.rules OR NEW.default_route <> OLD.default_route
       OR NEW.name IS DISTINCT FROM OLD.name OR NEW.created <> OLD.created THEN
        RAISE EXCEPTION 'routing configuration % is immutable; create a new version', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER routing_configs_frozen BEFORE UPDATE ON routing_configs
    FOR EACH ROW EXECUTE FUNCTION routing_configs_frozen();
"""

DOWNGRADE = r"""
DROP TABLE routing_configs;
DROP FUNCTION routing_configs_frozen();
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
