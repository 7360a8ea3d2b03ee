-- Calls of the litemaas_hooks functions in the backend database (see migrations/).

-- name: lock_models
SELECT litemaas_hooks.lock_models_v1(%(ids)s::text[])

-- name: models_snapshot
-- Of metadata (the proxy's whole /model/info entry, ~9 KB a row) planning needs only which views it
-- holds and model_info.blocked (planning.CurrentRow): those travel, not the rest.
SELECT s.id, s.name, s.provider, s.description, s.category, s.context_length,
       s.input_cost_per_token, s.output_cost_per_token,
       s.supports_vision, s.supports_function_calling, s.supports_tool_choice,
       s.supports_parallel_function_calling, s.supports_streaming, s.features,
       s.availability, s.version,
       CASE WHEN pg_catalog.jsonb_typeof(s.metadata) = 'object' THEN
           pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
               'litellm_model_info',
               CASE WHEN s.metadata ? 'litellm_model_info' THEN
                   pg_catalog.jsonb_build_object('blocked', s.metadata -> 'litellm_model_info' -> 'blocked')
               END,
               'litellm_params', CASE WHEN s.metadata ? 'litellm_params' THEN '{}'::jsonb END))
       ELSE s.metadata END AS metadata,
       s.api_base, s.tpm, s.rpm, s.max_tokens, s.litellm_model_id, s.backend_model_name, s.hidden_reason
FROM litemaas_hooks.models_snapshot_v1(%(ids)s::text[]) AS s

-- name: upsert_models
SELECT model_id, outcome FROM litemaas_hooks.upsert_models_v1(%(models)s::jsonb)

-- name: retire_model
SELECT litemaas_hooks.retire_model_v1(%(id)s, %(cascade)s, %(reason)s) AS result

-- name: model_ids
SELECT model_ids_v1 AS id FROM litemaas_hooks.model_ids_v1()

-- name: try_lock_models
SELECT litemaas_hooks.try_lock_models_v1(%(ids)s::text[], %(rows_only)s) AS busy

-- name: set_lock_timeout
-- Our transaction waits at most this long for any lock (then 55P03: the names are retried later).
SELECT set_config('lock_timeout', %(timeout)s, true)

-- name: note_model_sources
SELECT litemaas_hooks.note_model_sources_v1(%(ids)s::text[], %(from_db)s::boolean[])

-- name: db_model_ids
SELECT db_model_ids_v1 AS id FROM litemaas_hooks.db_model_ids_v1(%(ids)s::text[])

-- name: begin
-- Explicit transaction statements for pipelined round trips (psycopg's transaction() syncs the
-- pipeline at its start and end: two extra round trips).
BEGIN

-- name: commit
COMMIT

-- name: rollback
ROLLBACK
