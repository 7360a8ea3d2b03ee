-- Repeatable (run on every `litemaas-hooks install`): the current definition of the trigger function.
-- Released migrations keep their original text; functions are code and live here, one per file.
--
-- Privileges (README, "Database privileges"): SECURITY INVOKER. The function runs as the role that
-- writes LiteLLM's table (LiteLLM's own role), never as the installer: whatever that table's owner
-- controls (column types, casts, operators, defaults) can only ever run with the writer's own
-- privileges. The writer therefore needs INSERT on four outbox columns and USAGE on the id sequence;
-- 95_writer_grants.sql grants them to the table's owner. An UPDATE is a change when any column but the
-- bookkeeping ones Prisma bumps on every write differs: to_jsonb(OLD) vs to_jsonb(NEW), so every column
-- the table has NOW counts, one LiteLLM adds later too (1.81 -> 1.108 adds `blocked`): no column list is
-- fixed at install, nothing goes stale, nothing needs repairing. The conversion runs as the writer (like
-- any trigger the table's owner may put on its own table itself): a cast of the owner's own types never
-- runs as anybody the owner could not already reach.
--
-- Waiting: lock_timeout is a few milliseconds, so a locked outbox (a long transaction, LOCK, VACUUM
-- FULL, an ALTER TABLE) delays LiteLLM's write by at most that much. Every error is caught and becomes a
-- WARNING, and so is query_canceled (LiteLLM's own statement_timeout firing while we run): LiteLLM's
-- write is always kept. A change that could not be recorded is healed by the periodic full reconcile.
-- Versioned name (_v1) so a later release can ship _v2 side by side.
CREATE OR REPLACE FUNCTION litemaas_hooks.record_model_event_v1() RETURNS trigger
    LANGUAGE plpgsql
    SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
    SET lock_timeout = '5ms'
AS $fn$
DECLARE
    v_model_id text;
BEGIN
    BEGIN
        IF TG_OP = 'INSERT' THEN
            v_model_id := NEW.model_id::text;
            INSERT INTO litemaas_hooks.model_events (op, model_id, new_model_name)
            VALUES ('INSERT', NEW.model_id::text, NEW.model_name::text);
        ELSIF TG_OP = 'UPDATE' THEN
            v_model_id := NEW.model_id::text;
            IF (pg_catalog.to_jsonb(OLD) - '{created_at,created_by,updated_at,updated_by}'::text[])
               IS NOT DISTINCT FROM
               (pg_catalog.to_jsonb(NEW) - '{created_at,created_by,updated_at,updated_by}'::text[]) THEN
                RETURN NULL;  -- only bookkeeping changed
            END IF;
            INSERT INTO litemaas_hooks.model_events (op, model_id, old_model_name, new_model_name)
            VALUES ('UPDATE', NEW.model_id::text, OLD.model_name::text, NEW.model_name::text);
        ELSIF TG_OP = 'DELETE' THEN
            v_model_id := OLD.model_id::text;
            INSERT INTO litemaas_hooks.model_events (op, model_id, old_model_name)
            VALUES ('DELETE', OLD.model_id::text, OLD.model_name::text);
        ELSE
            RETURN NULL;
        END IF;
        -- NOTIFY is queued until commit and fails there (outside this block) if the notification
        -- queue is full. Skip the wake-up when the queue is half full: the relays poll anyway.
        IF pg_catalog.pg_notification_queue_usage() < 0.5 THEN
            PERFORM pg_catalog.pg_notify('litemaas_hooks_model_events', '');
        END IF;
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        RAISE WARNING 'litemaas-hooks: could not record % of LiteLLM model % in litemaas_hooks.model_events '
            '(%: %). LiteLLM''s write is kept; the periodic reconcile will apply the change. '
            'Check `litemaas-hooks status` and re-run `litemaas-hooks install`.',
            TG_OP, v_model_id, SQLSTATE, SQLERRM;
    END;
    RETURN NULL;
END
$fn$;

REVOKE ALL ON FUNCTION litemaas_hooks.record_model_event_v1() FROM PUBLIC;
COMMENT ON FUNCTION litemaas_hooks.record_model_event_v1() IS
    'litemaas-hooks: row trigger on public."LiteLLM_ProxyModelTable" feeding litemaas_hooks.model_events '
    '(SECURITY INVOKER; an UPDATE counts when any column but created_/updated_at/_by differs, whatever '
    'columns the table has now)';
