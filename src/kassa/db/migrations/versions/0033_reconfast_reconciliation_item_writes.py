"""Reconciliation items written at bulk speed: a million-row settlement file's items are one
INSERT, and what it cost per row is gone while what it guaranteed stays.

Revision ID: reconfast_item_writes
Revises: payoutbits_chargeback_reversals (re-chained after main's 0029-0032)

- The foreign key ``reconciliation_items.run_id → reconciliation_runs`` ran one lookup (with
  a FOR KEY SHARE lock) per inserted item. It is replaced by a trigger once per statement
  over the statement's new rows (a transition table): every run they name must exist, and is
  locked FOR KEY SHARE as the key did; and by a trigger on ``reconciliation_runs`` that
  refuses to delete a run, or change its id, while an item names it (what the key's NO
  ACTION did; TRUNCATE too, while any item exists). An item can still never name a run
  that does not exist.
- ``reconciliation_items_matched`` (every matched item) becomes the matched items that were
  not posted: a posted one is already in ``reconciliation_settled_object`` (category,
  matched), so "has any run a row for this object in this category" is the two indexes
  together. A day's items no longer write one entry each into a fourth index.

The key's own check reads with a snapshot of its own, the triggers with the statement's: a
run is therefore deleted or re-keyed only under READ COMMITTED (where the trigger, run after
the row lock, sees every committed item); under REPEATABLE READ or SERIALIZABLE an item
committed after the deleter's snapshot would be invisible to it, so those are refused
(found by review). The functions resolve their tables with a fixed search_path (the
migration's schema, then pg_temp last), so a session's temporary table of the same name
cannot stand in for the real one.

No row changes; the downgrade restores the key (validated: the triggers kept it true) and
the index.
"""

from alembic import op

revision = "reconfast_item_writes"
down_revision = "payoutbits_chargeback_reversals"

UPGRADE = r"""
ALTER TABLE reconciliation_items DROP CONSTRAINT reconciliation_items_run_id_fkey;

CREATE FUNCTION reconciliation_items_run_exists() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    runs text[] := ARRAY(SELECT DISTINCT run_id FROM new_items);
    locked bigint;
BEGIN
    -- locked as the foreign key locked them: no run named here can be deleted (or its id
    -- changed) before this transaction ends
    SELECT count(*) INTO locked FROM (SELECT 1 FROM reconciliation_runs
        WHERE id = ANY (runs) FOR KEY SHARE) l;
    IF locked < cardinality(runs) THEN
        RAISE EXCEPTION 'reconciliation item of a run that does not exist: %',
            (SELECT r FROM unnest(runs) r WHERE NOT EXISTS (SELECT 1 FROM reconciliation_runs
             WHERE id = r) LIMIT 1)
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER reconciliation_items_run_inserted AFTER INSERT ON reconciliation_items
    REFERENCING NEW TABLE AS new_items FOR EACH STATEMENT
    EXECUTE FUNCTION reconciliation_items_run_exists();
CREATE TRIGGER reconciliation_items_run_updated AFTER UPDATE ON reconciliation_items
    REFERENCING NEW TABLE AS new_items FOR EACH STATEMENT
    EXECUTE FUNCTION reconciliation_items_run_exists();

CREATE FUNCTION reconciliation_runs_keep_items() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (TG_OP = 'DELETE' OR NEW.id IS DISTINCT FROM OLD.id)
       AND current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'reconciliation runs are deleted or re-keyed only under READ'
            ' COMMITTED (an item committed after this snapshot would not be seen)'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF (TG_OP = 'DELETE' OR NEW.id IS DISTINCT FROM OLD.id)
       AND EXISTS (SELECT 1 FROM reconciliation_items WHERE run_id = OLD.id) THEN
        RAISE EXCEPTION 'reconciliation run % still has items', OLD.id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
END $$;
CREATE TRIGGER reconciliation_runs_keep_items BEFORE DELETE OR UPDATE OF id
    ON reconciliation_runs FOR EACH ROW EXECUTE FUNCTION reconciliation_runs_keep_items();
-- stricter than the key (which let both tables be truncated together): a run with items
-- is never truncated away
CREATE FUNCTION reconciliation_runs_keep_items_truncate() RETURNS trigger LANGUAGE plpgsql
AS $$
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed'
       OR EXISTS (SELECT 1 FROM reconciliation_items) THEN
        RAISE EXCEPTION 'reconciliation runs still have items'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER reconciliation_runs_keep_items_truncate BEFORE TRUNCATE
    ON reconciliation_runs FOR EACH STATEMENT
    EXECUTE FUNCTION reconciliation_runs_keep_items_truncate();

DROP INDEX reconciliation_items_matched;
CREATE INDEX reconciliation_items_matched ON reconciliation_items (matched)
    WHERE matched IS NOT NULL AND NOT posted;

DO $$
DECLARE f text;
BEGIN
    FOREACH f IN ARRAY ARRAY['reconciliation_items_run_exists()',
                             'reconciliation_runs_keep_items()',
                             'reconciliation_runs_keep_items_truncate()'] LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, %I, pg_temp', f,
                       current_schema());
    END LOOP;
END $$;
"""

DOWNGRADE = r"""
DROP INDEX reconciliation_items_matched;
CREATE INDEX reconciliation_items_matched ON reconciliation_items (matched)
    WHERE matched IS NOT NULL;
DROP TRIGGER reconciliation_runs_keep_items_truncate ON reconciliation_runs;
DROP TRIGGER reconciliation_runs_keep_items ON reconciliation_runs;
DROP FUNCTION reconciliation_runs_keep_items_truncate();
DROP FUNCTION reconciliation_runs_keep_items();
DROP TRIGGER reconciliation_items_run_updated ON reconciliation_items;
DROP TRIGGER reconciliation_items_run_inserted ON reconciliation_items;
DROP FUNCTION reconciliation_items_run_exists();
ALTER TABLE reconciliation_items ADD CONSTRAINT reconciliation_items_run_id_fkey
    FOREIGN KEY (run_id) REFERENCES reconciliation_runs(id);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
