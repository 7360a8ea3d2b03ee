-- Calls of the litemaas_hooks functions in the backend database (see migrations/).

-- name: lock_models
SELECT litemaas_hooks.lock_models_v1(%(ids)s::text[])

-- name: models_snapshot
SELECT * FROM litemaas_hooks.models_snapshot_v1(%(ids)s::text[])

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
