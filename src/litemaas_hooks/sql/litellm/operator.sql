-- Queries of operator commands (the CLI), LiteLLM side. litemaas_hooks.sql.query("litellm", name).

-- name: events_status
-- The status of the given outbox event ids (ids that do not exist are simply absent).
SELECT id, status FROM litemaas_hooks.model_events WHERE id = ANY(%(ids)s::bigint[]) ORDER BY id
