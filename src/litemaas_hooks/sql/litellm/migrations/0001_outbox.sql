-- LiteLLM database, schema litemaas_hooks (never public: Prisma may drop objects it does not know there).
--
-- litemaas_hooks.model_events is a transactional outbox: a row trigger on LiteLLM's model table
-- (repeatable/trigger.sql) records every relevant change in the same transaction as LiteLLM's own write
-- and wakes the relays with pg_notify('litemaas_hooks_model_events', ''). Relays claim pending events
-- with FOR UPDATE SKIP LOCKED, converge the affected model names and DELETE the events once the backend
-- transaction committed. Failed events are retried with capped exponential backoff and become 'dead'
-- after the configured number of attempts (visible in `litemaas-hooks status`, re-playable).
--
-- The payload is small and secret-free: never litellm_params (encrypted credentials) or model_info.

CREATE SCHEMA IF NOT EXISTS litemaas_hooks;

CREATE TABLE litemaas_hooks.model_events (
    id              bigserial   PRIMARY KEY,
    op              text        NOT NULL CHECK (op IN ('INSERT', 'UPDATE', 'DELETE', 'RESYNC')),
    model_id        text,
    old_model_name  text,
    new_model_name  text,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'claimed', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    claimed_at      timestamptz,
    claimed_by      text,
    last_error      text,
    CHECK ((status = 'claimed') = (claimed_at IS NOT NULL AND claimed_by IS NOT NULL))
);

COMMENT ON TABLE litemaas_hooks.model_events IS
    'litemaas-hooks outbox: one row per change of public."LiteLLM_ProxyModelTable" not yet applied to '
    'the LiteMaaS backend. Rows are deleted once applied. Inspect with `litemaas-hooks status`.';

-- claim: due pending events in id order
CREATE INDEX model_events_pending_idx ON litemaas_hooks.model_events (next_attempt_at, id)
    WHERE status = 'pending';
-- stalled-claim recovery
CREATE INDEX model_events_claimed_idx ON litemaas_hooks.model_events (claimed_at)
    WHERE status = 'claimed';
-- status / replay
CREATE INDEX model_events_dead_idx ON litemaas_hooks.model_events (id)
    WHERE status = 'dead';

-- When the periodic full reconcile last ran, fleet-wide (one row). Guarded by a session advisory lock.
CREATE TABLE litemaas_hooks.reconcile_state (
    id               integer     PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    last_started_at  timestamptz,
    last_finished_at timestamptz,
    last_runner      text,
    last_summary     text
);
INSERT INTO litemaas_hooks.reconcile_state (id) VALUES (1);

-- The trigger function. SECURITY DEFINER (runs as the installing role), so LiteLLM's own role needs no
-- privilege on this schema; search_path pinned so nothing LiteLLM's role creates can be picked up.
-- lock_timeout bounds how long a locked outbox can delay LiteLLM's write. Every error is caught and
-- turned into a WARNING: the trigger can never make LiteLLM's own write fail (a missed event is healed
-- by the periodic full reconcile). Versioned name (_v1) so a later release can ship _v2 side by side.
CREATE FUNCTION litemaas_hooks.record_model_event_v1() RETURNS trigger
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
