"""Inbound PSP webhooks (an inbox applied asynchronously, in per-object order) and disputes.

Revision ID: 0004
Revises: 0002
"""

from alembic import op

revision = "0004"
down_revision = "0002"

UPGRADE = r"""
-- Every verified PSP event, stored once: the unique (psp, psp_event_id) turns a duplicate
-- delivery into a no-op. The psp-webhooks worker claims pending rows with SKIP LOCKED and
-- applies each in the transaction that marks it done.
CREATE TABLE psp_events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    psp           text NOT NULL,
    psp_event_id  text NOT NULL CHECK (length(psp_event_id) BETWEEN 1 AND 255),
    type          text NOT NULL,
    object_ref    text NOT NULL,               -- the PSP object the event is about
    sequence      bigint NOT NULL CHECK (sequence > 0),  -- its place in that object's history
    event         jsonb NOT NULL,              -- the normalised event (psp.base.PSPEvent)
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'applied', 'ignored', 'failed')),
    attempts      integer NOT NULL DEFAULT 0,
    available_at  timestamptz NOT NULL DEFAULT now(),  -- deferred events wait until then
    received_at   timestamptz NOT NULL DEFAULT now(),
    processed_at  timestamptz,
    result        text,                        -- why ignored, deferred or failed
    UNIQUE (psp, psp_event_id),
    CHECK ((status = 'pending') = (processed_at IS NULL))
);
CREATE INDEX psp_events_pending ON psp_events (available_at, id) WHERE status = 'pending';

-- The highest sequence applied per PSP object: an event at or below it is stale. Its row
-- lock also serialises workers applying events about the same object.
CREATE TABLE psp_object_versions (
    psp         text NOT NULL,
    object_ref  text NOT NULL,
    sequence    bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (psp, object_ref)
);

CREATE TABLE disputes (
    seq                bigint GENERATED ALWAYS AS IDENTITY,
    id                 text PRIMARY KEY,
    merchant_id        text NOT NULL,
    payment_intent_id  text NOT NULL REFERENCES payment_intents(id),
    charge             text NOT NULL,
    psp                text NOT NULL,
    psp_dispute_id     text NOT NULL,
    amount             bigint NOT NULL CHECK (amount > 0),
    fee                bigint NOT NULL CHECK (fee >= 0),
    currency           text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    status             text NOT NULL CHECK (status IN ('warning_needs_response',
                         'warning_under_review', 'warning_closed', 'needs_response',
                         'under_review', 'won', 'lost')),
    reason             text NOT NULL,
    evidence           jsonb NOT NULL DEFAULT '{}',
    evidence_due_by    bigint,
    submission_count   integer NOT NULL DEFAULT 0 CHECK (submission_count >= 0),
    metadata           jsonb NOT NULL DEFAULT '{}',
    withdrawal_balance_transaction    text,
    reinstatement_balance_transaction text,
    created            bigint NOT NULL,
    version            integer NOT NULL DEFAULT 0,
    UNIQUE (psp, psp_dispute_id),
    -- money follows status: withdrawn once a chargeback, returned only when won
    CHECK ((withdrawal_balance_transaction IS NOT NULL)
           = (status IN ('needs_response', 'under_review', 'won', 'lost'))),
    CHECK ((reinstatement_balance_transaction IS NOT NULL) = (status = 'won'))
);
CREATE INDEX disputes_merchant_seq ON disputes (merchant_id, seq);
CREATE INDEX disputes_payment ON disputes (payment_intent_id);

-- Two new ledger transaction kinds; NOT VALID + VALIDATE keeps the table writable while
-- existing rows are checked.
ALTER TABLE ledger_transactions DROP CONSTRAINT ledger_transactions_kind_check;
ALTER TABLE ledger_transactions ADD CONSTRAINT ledger_transactions_kind_check
    CHECK (kind IN ('authorization_hold', 'authorization_release', 'capture', 'refund',
                    'refund_reversal', 'availability', 'dispute', 'dispute_reversal')) NOT VALID;
ALTER TABLE ledger_transactions VALIDATE CONSTRAINT ledger_transactions_kind_check;
"""

DOWNGRADE = r"""
DROP TABLE disputes, psp_object_versions, psp_events;
ALTER TABLE ledger_transactions DROP CONSTRAINT ledger_transactions_kind_check;
ALTER TABLE ledger_transactions ADD CONSTRAINT ledger_transactions_kind_check
    CHECK (kind IN ('authorization_hold', 'authorization_release', 'capture', 'refund',
                    'refund_reversal', 'availability')) NOT VALID;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
