-- Read-only queries of `litemaas-hooks show`: the outbox events that concern given model names.

-- name: show_events
SELECT e.id, e.op, e.model_id, e.old_model_name, e.new_model_name, e.status, e.attempts, e.last_error,
       e.created_at
FROM litemaas_hooks.model_events AS e
WHERE e.new_model_name = ANY(%(names)s::text[]) OR e.old_model_name = ANY(%(names)s::text[])
ORDER BY e.id
LIMIT 100
