"""kassa_apply_batch(units): many concurrent requests' units of work in one transaction;
also the merge point of the 0003/0004/0005 branches.

Revision ID: 0006
Revises: 0003, 0004, 0005
"""

from alembic import op

revision = "0006"
down_revision = ("0003", "0004", "0005")

# Measured with pgbench on the 2-core machine (PostgreSQL CPU per card payment, both saga
# steps): one kassa_apply per step 1.75-1.94 ms; 16 payments' steps per call 0.93-1.03 ms.
# A transaction's fixed cost (snapshot, commit record, WAL flush, executor start-up of the
# triggers) is paid once per batch instead of once per request.
#
# Each unit runs in its own subtransaction (the EXCEPTION block): a unit that fails (a
# compare-and-swap miss, a taken Idempotency-Key, a deadlock) is rolled back alone and
# reported in the result; the others commit. The result is a JSON array with one element
# per unit: null when applied, else {sqlstate, constraint, message}.
# The deferred ledger checks (balanced, >= 2 entries) still run at COMMIT, for the whole
# batch; if one fails the statement fails and db/batch_writer.py applies each unit on its
# own, so only the faulty one is refused. (SET CONSTRAINTS ALL IMMEDIATE per unit would
# pin the failure on its unit but cost ~0.2 ms per payment; an unbalanced posting is a
# bug, not a business outcome.)
# lock_timeout: a unit that would wait for a row another transaction holds (two requests
# on one payment or one Idempotency-Key) gives up after 20 ms with 55P03 and is re-applied
# on its own after the batch, so it neither stalls the other units until that transaction
# ends nor lets two batches deadlock (which PostgreSQL resolves only after deadlock_timeout,
# 1 s). kassa_apply on its own waits as long as it takes.
# Callers keep batches at 32 units or fewer: PostgreSQL caches 64 subtransaction ids per
# backend; beyond that other sessions' snapshots get slower.
#
# Plans: the service pools run with enable_seqscan = off (bootstrap.py), which covers the
# statements here and the triggers they fire; no per-function setting on top of it.
UPGRADE = r"""
CREATE FUNCTION kassa_apply_batch(units jsonb) RETURNS jsonb LANGUAGE plpgsql
SET lock_timeout = '20ms' AS $$
DECLARE
    results jsonb := '[]';
    u jsonb;
    st text;
    msg text;
    cons text;
BEGIN
    FOR u IN SELECT value FROM jsonb_array_elements(units) LOOP
        BEGIN
            PERFORM kassa_apply(u);
            results := results || 'null'::jsonb;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                                    cons = CONSTRAINT_NAME;
            results := results || jsonb_build_array(jsonb_build_object(
                'sqlstate', st, 'constraint', nullif(cons, ''), 'message', msg));
        END;
    END LOOP;
    RETURN results;
END $$;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP FUNCTION kassa_apply_batch(jsonb)")
