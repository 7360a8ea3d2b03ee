-- Repeatable (run on every `litemaas-hooks install`): the current definition of the trigger function.
-- Released migrations keep their original text; functions are code and live here, one per file.

-- The trigger function. SECURITY DEFINER (runs as the installing role), so LiteLLM's own role needs no
-- privilege on this schema; search_path pinned so nothing LiteLLM's role creates can be picked up.
-- lock_timeout bounds how long a locked outbox can delay LiteLLM's write. Every error is caught and
-- turned into a WARNING: the trigger can never make LiteLLM's own write fail (a missed event is healed
-- by the periodic full reconcile). Versioned name (_v1) so a later release can ship _v2 side by side.
CREATE OR REPLACE FUNCTION litemaas_hooks.record_model_event_v1() RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET lock_timeout = '1s'
AS $fn$
DECLARE
    -- columns whose change alone is not a change of the model (Prisma bumps them on every update)
    ignored CONSTANT text[] := ARRAY['created_at', 'created_by', 'updated_at', 'updated_by'];
BEGIN
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO litemaas_hooks.model_events (op, model_id, new_model_name)
            VALUES ('INSERT', NEW.model_id, NEW.model_name);
        ELSIF TG_OP = 'UPDATE' THEN
            -- compare whole rows as jsonb, so columns LiteLLM adds later count as relevant too
            IF (to_jsonb(OLD) - ignored) IS NOT DISTINCT FROM (to_jsonb(NEW) - ignored) THEN
                RETURN NULL;
            END IF;
            INSERT INTO litemaas_hooks.model_events (op, model_id, old_model_name, new_model_name)
            VALUES ('UPDATE', NEW.model_id, OLD.model_name, NEW.model_name);
        ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO litemaas_hooks.model_events (op, model_id, old_model_name)
            VALUES ('DELETE', OLD.model_id, OLD.model_name);
        ELSE
            RETURN NULL;
        END IF;
        -- NOTIFY is queued until commit and fails there (outside this block) if the notification
        -- queue is full. Skip the wake-up when the queue is half full: the relays poll anyway.
        IF pg_notification_queue_usage() < 0.5 THEN
            PERFORM pg_notify('litemaas_hooks_model_events', '');
        END IF;
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'litemaas-hooks: could not record % of LiteLLM model % in litemaas_hooks.model_events '
            '(%: %). LiteLLM''s write is kept; the periodic reconcile will apply the change. '
            'Check `litemaas-hooks status` and re-run `litemaas-hooks install`.',
            TG_OP, COALESCE(to_jsonb(NEW), to_jsonb(OLD)) ->> 'model_id', SQLSTATE, SQLERRM;
    END;
    RETURN NULL;
END
$fn$;

REVOKE ALL ON FUNCTION litemaas_hooks.record_model_event_v1() FROM PUBLIC;

COMMENT ON FUNCTION litemaas_hooks.record_model_event_v1() IS
    'litemaas-hooks: row trigger on public."LiteLLM_ProxyModelTable" feeding litemaas_hooks.model_events.';
