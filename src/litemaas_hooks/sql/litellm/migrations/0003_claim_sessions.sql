-- LiteLLM database: claims tied to the claimer's database session; database-side change order.
--
-- A claim records the claiming connection's pg_backend_pid() and backend_start. When that session is
-- gone from pg_stat_activity (the relay was killed, its pod evicted, its connection cut), the claim is
-- given back at once by any relay, and the interrupted attempt is not counted — for the first few
-- interruptions of an event (interruptions); an event that keeps killing its relays (out of memory)
-- then spends attempts again and ends up dead. A relay that hangs with its session alive is still
-- recovered after stall_timeout_seconds.
ALTER TABLE litemaas_hooks.model_events
    ADD COLUMN IF NOT EXISTS claimed_pid integer,
    ADD COLUMN IF NOT EXISTS claimed_session_start timestamptz,
    ADD COLUMN IF NOT EXISTS interruptions integer NOT NULL DEFAULT 0;

-- The outbox id of the latest change seen per deployment (model_id): a database-side order of changes,
-- set when relays claim events. LiteLLM's updated_at is stamped by each replica's own clock and cannot
-- order changes made on different machines; this can.
CREATE TABLE IF NOT EXISTS litemaas_hooks.deployment_changes (
    model_id      text   PRIMARY KEY,
    last_event_id bigint NOT NULL
);

COMMENT ON TABLE litemaas_hooks.deployment_changes IS
    'litemaas-hooks: outbox id of the latest change per LiteLLM deployment (orders changes without clocks).';
