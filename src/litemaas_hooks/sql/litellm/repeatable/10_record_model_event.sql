-- Repeatable (run on every `litemaas-hooks install`): the current definition of the trigger function.
-- Released migrations keep their original text; functions are code and live here, one per file.
--
-- Privileges (README, "Database privileges"): SECURITY INVOKER. The function runs as the role that
-- writes LiteLLM's table (LiteLLM's own role), never as the installer: whatever that table's owner
-- controls (column types, casts, operators, defaults) can only ever run with the writer's own
-- privileges. The writer therefore needs INSERT on four outbox columns and USAGE on the id sequence;
-- 95_writer_grants.sql grants them to the table's owner. The body never looks at whole rows (no
-- to_jsonb(OLD), no OLD = NEW): it compares the columns of the table as it is at install time, by
-- name, through the built-in text output of built-in types only; columns of any other type are not
-- compared (they are listed in the function's comment).
--
-- Waiting: lock_timeout is a few milliseconds, so a locked outbox (a long transaction, LOCK, VACUUM
-- FULL, an ALTER TABLE) delays LiteLLM's write by at most that much. Every error is caught and becomes a
-- WARNING, and so is query_canceled (LiteLLM's own statement_timeout firing while we run): LiteLLM's
-- write is always kept. A change that could not be recorded is healed by the periodic full reconcile.
-- Versioned name (_v1) so a later release can ship _v2 side by side.
DO $install$
DECLARE
    tbl      regclass := pg_catalog.to_regclass('public."LiteLLM_ProxyModelTable"');
    compared text;
    skipped  text;
    body     text;
BEGIN
    -- Columns whose change is a change of the model: every column except the bookkeeping ones Prisma
    -- bumps on every write, if its type is a built-in one (pg_catalog; nobody but a superuser owns those).
    SELECT pg_catalog.string_agg(pg_catalog.format('OLD.%1$I::text IS DISTINCT FROM NEW.%1$I::text', a.attname),
                                 ' OR ' ORDER BY a.attnum)
               FILTER (WHERE t.typnamespace = 'pg_catalog'::regnamespace),
           pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum)
               FILTER (WHERE t.typnamespace <> 'pg_catalog'::regnamespace)
      INTO compared, skipped
    FROM pg_catalog.pg_attribute AS a
    JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid
    WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped
      AND a.attname NOT IN ('created_at', 'created_by', 'updated_at', 'updated_by');
    IF compared IS NULL THEN
        -- no table yet (90_trigger.sql says so) or no comparable column: LiteLLM's known columns
        compared := 'OLD.model_id IS DISTINCT FROM NEW.model_id OR OLD.model_name IS DISTINCT FROM NEW.model_name '
                    'OR OLD.litellm_params::text IS DISTINCT FROM NEW.litellm_params::text '
                    'OR OLD.model_info::text IS DISTINCT FROM NEW.model_info::text';
    END IF;

    body := pg_catalog.format($body$
CREATE OR REPLACE FUNCTION litemaas_hooks.record_model_event_v1() RETURNS trigger
    LANGUAGE plpgsql
    SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
    SET lock_timeout = '5ms'
AS $fn$
DECLARE
    v_model_id text;
    v_changed  boolean;
BEGIN
    BEGIN
        IF TG_OP = 'INSERT' THEN
            v_model_id := NEW.model_id::text;
            INSERT INTO litemaas_hooks.model_events (op, model_id, new_model_name)
            VALUES ('INSERT', NEW.model_id::text, NEW.model_name::text);
        ELSIF TG_OP = 'UPDATE' THEN
            v_model_id := NEW.model_id::text;
            BEGIN
                v_changed := (%s);
            EXCEPTION WHEN undefined_column OR undefined_object THEN
                v_changed := true;  -- LiteLLM changed its table since install: count it as a change
            END;
            IF NOT v_changed THEN
                RETURN NULL;
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
        RAISE WARNING 'litemaas-hooks: could not record %% of LiteLLM model %% in litemaas_hooks.model_events '
            '(%%: %%). LiteLLM''s write is kept; the periodic reconcile will apply the change. '
            'Check `litemaas-hooks status` and re-run `litemaas-hooks install`.',
            TG_OP, v_model_id, SQLSTATE, SQLERRM;
    END;
    RETURN NULL;
END
$fn$
$body$, compared);
    -- the %% above stay literal for RAISE: format() turned each into one %
    EXECUTE body;
    REVOKE ALL ON FUNCTION litemaas_hooks.record_model_event_v1() FROM PUBLIC;
    EXECUTE pg_catalog.format(
        'COMMENT ON FUNCTION litemaas_hooks.record_model_event_v1() IS %L',
        'litemaas-hooks: row trigger on public."LiteLLM_ProxyModelTable" feeding litemaas_hooks.model_events '
        '(SECURITY INVOKER; compares the columns present at install time'
        || CASE WHEN skipped IS NULL THEN '' ELSE '; not compared, not of a built-in type: ' || skipped END
        || '; re-run `litemaas-hooks install` after LiteLLM changed its table)');
END
$install$;
