-- Repeatable (run on every `litemaas-hooks install`): the current definition of the trigger function.
-- Released migrations keep their original text; functions are code and live here, one per file.
--
-- Privileges (docs/privileges.md): SECURITY INVOKER. The function runs as the role that
-- writes LiteLLM's table (LiteLLM's own role), never as the installer: whatever that table's owner
-- controls (column types, casts, operators, defaults) can only ever run with the writer's own
-- privileges. The writer therefore needs INSERT on four outbox columns and USAGE on the id
-- sequence; 95_writer_grants.sql grants them to the table's owner. An UPDATE is a change when any
-- column but the bookkeeping ones Prisma bumps on every write differs: to_jsonb(OLD) vs
-- to_jsonb(NEW), so every column the table has NOW counts, one LiteLLM adds later too (1.81 ->
-- 1.108 adds `blocked`): no column list is fixed at install, nothing goes stale, nothing needs
-- repairing. The conversion runs as the writer (like any trigger the table's owner may put on its
-- own table itself): a cast of the owner's own types never runs as anybody the owner could not
-- already reach.
--
-- One subtransaction per STATEMENT, never per row: three statement-level triggers (90_trigger.sql)
-- hand this function the statement's rows as transition tables (new_rows / old_rows), and one
-- INSERT ... SELECT records them all inside one BEGIN ... EXCEPTION block. A row-level trigger
-- opened one per row: a LiteLLM transaction touching more than 64 rows overflowed the backend's
-- subtransaction cache (every snapshot of every session then pays for it).
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
    v_count bigint := 0;
    v_ids   text;  -- for the warning: the first few model ids of the statement
BEGIN
    BEGIN
        IF TG_OP = 'DELETE' THEN
            SELECT pg_catalog.string_agg(x.id, ', ') INTO v_ids
            FROM (SELECT o.model_id::text AS id FROM old_rows AS o ORDER BY 1 LIMIT 5) AS x;
        ELSE
            SELECT pg_catalog.string_agg(x.id, ', ') INTO v_ids
            FROM (SELECT n.model_id::text AS id FROM new_rows AS n ORDER BY 1 LIMIT 5) AS x;
        END IF;
        IF TG_OP = 'INSERT' THEN
            INSERT INTO litemaas_hooks.model_events (op, model_id, new_model_name)
            SELECT 'INSERT', n.model_id::text, n.model_name::text
            FROM new_rows AS n ORDER BY n.model_id::text;
        ELSIF TG_OP = 'UPDATE' THEN
            -- pairs by model_id (Prisma never changes it; if someone does, that is a delete + an
            -- insert)
            INSERT INTO litemaas_hooks.model_events (op, model_id, old_model_name, new_model_name)
            SELECT CASE WHEN o.model_id IS NULL THEN 'INSERT' WHEN n.model_id IS NULL THEN 'DELETE'
                        ELSE 'UPDATE' END,
                   coalesce(n.model_id, o.model_id), o.model_name, n.model_name
            FROM (SELECT x.model_id::text AS model_id, x.model_name::text AS model_name,
                         pg_catalog.to_jsonb(x)
                             - '{created_at,created_by,updated_at,updated_by}'::text[] AS body
                  FROM old_rows AS x) AS o
            FULL JOIN (SELECT y.model_id::text AS model_id, y.model_name::text AS model_name,
                              pg_catalog.to_jsonb(y)
                                  - '{created_at,created_by,updated_at,updated_by}'::text[] AS body
                       FROM new_rows AS y) AS n ON n.model_id = o.model_id
            WHERE o.body IS DISTINCT FROM n.body  -- only bookkeeping changed: no event
            ORDER BY coalesce(n.model_id, o.model_id);
        ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO litemaas_hooks.model_events (op, model_id, old_model_name)
            SELECT 'DELETE', o.model_id::text, o.model_name::text
            FROM old_rows AS o ORDER BY o.model_id::text;
        ELSE
            RETURN NULL;
        END IF;
        GET DIAGNOSTICS v_count = ROW_COUNT;
        -- NOTIFY is queued until commit and fails there (outside this block) if the notification
        -- queue is full. Skip the wake-up when the queue is half full: the relays poll anyway.
        IF v_count > 0 AND pg_catalog.pg_notification_queue_usage() < 0.5 THEN
            PERFORM pg_catalog.pg_notify('litemaas_hooks_model_events', '');
        END IF;
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        RAISE WARNING 'litemaas-hooks: could not record % of LiteLLM model % in '
            'litemaas_hooks.model_events (%: %). LiteLLM''s write is kept; the periodic reconcile '
            'will apply the change. Check `litemaas-hooks status` and re-run '
            '`litemaas-hooks install`.',
            TG_OP, coalesce(v_ids, '-'), SQLSTATE, SQLERRM;
    END;
    RETURN NULL;
END
$fn$;

REVOKE ALL ON FUNCTION litemaas_hooks.record_model_event_v1() FROM PUBLIC;
COMMENT ON FUNCTION litemaas_hooks.record_model_event_v1() IS
    'litemaas-hooks: statement triggers on public."LiteLLM_ProxyModelTable" feeding '
    'litemaas_hooks.model_events '
    '(SECURITY INVOKER; one subtransaction per statement; an UPDATE counts when any column but '
    'created_/updated_at/_by differs, whatever columns the table has now)';
