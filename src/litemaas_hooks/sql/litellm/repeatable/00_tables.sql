-- Repeatable (run on every `litemaas-hooks install`, before the functions): every table and index of
-- ours in the LiteLLM database, re-created when someone dropped it (a DBA's cleanup, a restore without
-- the schema). The migrations created them; this only repairs, IF NOT EXISTS everywhere, and keeps
-- the current definition (migrations 0001 + 0003 + 0005 + 0006). A re-created outbox is empty: changes made while it
-- was missing reach the backend through the periodic full reconcile.

CREATE SCHEMA IF NOT EXISTS litemaas_hooks;

CREATE TABLE IF NOT EXISTS litemaas_hooks.model_events (
    id                    bigserial   PRIMARY KEY,
    op                    text        NOT NULL CHECK (op IN ('INSERT', 'UPDATE', 'DELETE', 'RESYNC')),
    model_id              text,
    old_model_name        text,
    new_model_name        text,
    created_at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    status                text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'claimed', 'dead')),
    attempts              integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    claimed_at            timestamptz,
    claimed_by            text,
    last_error            text,
    claimed_pid           integer,
    claimed_session_start timestamptz,
    interruptions         integer     NOT NULL DEFAULT 0,
    CHECK ((status = 'claimed') = (claimed_at IS NOT NULL AND claimed_by IS NOT NULL))
);
-- Only a missing index is created: CREATE INDEX IF NOT EXISTS takes a SHARE lock on the table
-- before it finds the index there, and holds it until install commits; LiteLLM's trigger, which
-- waits at most 5 ms to insert an event, then lost the event of every write made meanwhile.
DO $install$
BEGIN
    IF pg_catalog.to_regclass('litemaas_hooks.model_events_pending_idx') IS NULL THEN
        CREATE INDEX model_events_pending_idx ON litemaas_hooks.model_events (next_attempt_at, id)
            WHERE status = 'pending';
    END IF;
    IF pg_catalog.to_regclass('litemaas_hooks.model_events_claimed_idx') IS NULL THEN
        CREATE INDEX model_events_claimed_idx ON litemaas_hooks.model_events (claimed_at)
            WHERE status = 'claimed';
    END IF;
    IF pg_catalog.to_regclass('litemaas_hooks.model_events_dead_idx') IS NULL THEN
        CREATE INDEX model_events_dead_idx ON litemaas_hooks.model_events (id)
            WHERE status = 'dead';
    END IF;
END
$install$;

CREATE TABLE IF NOT EXISTS litemaas_hooks.reconcile_state (
    id               integer     PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    last_started_at  timestamptz,
    last_finished_at timestamptz,
    last_runner      text,
    last_summary     text
);
INSERT INTO litemaas_hooks.reconcile_state (id) VALUES (1) ON CONFLICT (id) DO NOTHING;

CREATE TABLE IF NOT EXISTS litemaas_hooks.cost_map_memo (
    fingerprint    text        PRIMARY KEY,
    litellm_version text       NOT NULL,
    facts          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    answers        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    entries        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
