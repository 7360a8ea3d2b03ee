-- Calls of the litemaas_hooks functions in the backend database (see migrations/). Every call
-- checks its function first, in the same statement (repeatable/92_function_checks.sql): the call's
-- first argument depends on the check (g.ok), so the check runs before it and refuses a function
-- that was altered after install.

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
FROM litemaas_hooks.check_function_v1('litemaas_hooks.models_snapshot_v1(text[])') AS g (ok),
     LATERAL litemaas_hooks.models_snapshot_v1(CASE WHEN g.ok THEN %(ids)s::text[] END) AS s

-- name: upsert_models
SELECT u.model_id, u.outcome
FROM litemaas_hooks.check_function_v1('litemaas_hooks.upsert_models_v1(jsonb)') AS g (ok),
     LATERAL litemaas_hooks.upsert_models_v1(CASE WHEN g.ok THEN %(models)s::jsonb END) AS u

-- name: retire_model
SELECT litemaas_hooks.retire_model_v1(CASE WHEN g.ok THEN %(id)s END, %(cascade)s, %(reason)s)
       AS result
FROM litemaas_hooks.check_function_v1('litemaas_hooks.retire_model_v1(text, boolean, text)')
     AS g (ok)

-- name: model_ids
SELECT i.id
FROM litemaas_hooks.check_function_v1('litemaas_hooks.model_ids_v1()') AS g (ok),
     LATERAL (SELECT f.id FROM litemaas_hooks.model_ids_v1() AS f (id) WHERE g.ok) AS i

-- name: try_lock_models
SELECT litemaas_hooks.try_lock_models_v1(CASE WHEN g.ok THEN %(ids)s::text[] END, %(rows_only)s)
       AS busy
FROM litemaas_hooks.check_function_v1('litemaas_hooks.try_lock_models_v1(text[], boolean)')
     AS g (ok)

-- name: try_lock_models_with_timeout
-- try_lock_models after this transaction's lock timeout (as set_lock_timeout), in ONE statement:
-- the call's argument depends on the setting, so it runs after it.
SELECT litemaas_hooks.try_lock_models_v1(
           CASE WHEN g.ok AND t.timeout IS NOT NULL THEN %(ids)s::text[] END, %(rows_only)s) AS busy
FROM (SELECT pg_catalog.set_config('lock_timeout', %(timeout)s, true) AS timeout) AS t,
     litemaas_hooks.check_function_v1('litemaas_hooks.try_lock_models_v1(text[], boolean)') AS g (ok)

-- name: write_models
-- The relay's one-round-trip write (adds and updates), as ONE statement and one checked call:
-- write_models_v1 does what write_models_one_trip below does, in the same order (one function
-- check instead of four). One row: the busy names, the upsert's model ids and outcomes.
SELECT w.busy, w.ids, w.outcomes
FROM litemaas_hooks.check_function_v1(
         'litemaas_hooks.write_models_v1(text[], jsonb, text[], boolean[], text, text)') AS g (ok),
     LATERAL litemaas_hooks.write_models_v1(CASE WHEN g.ok THEN %(ids)s::text[] END,
                                           %(models)s::jsonb, %(source_ids)s::text[],
                                           %(from_db)s::boolean[], %(instance)s::text,
                                           %(timeout)s::text) AS w

-- name: retire_models
-- The relay's write of a delete (names LiteLLM no longer has), as ONE statement and one checked
-- call: retire_models_v1 takes the lock timeout and the names' locks, then plans and retires each
-- name not busy as the two round trips of the relay's other path do (try_lock_models, the rows,
-- retire_model_v2). One row: the busy names, one result per other name.
SELECT r.busy, r.results
FROM litemaas_hooks.check_function_v1(
         'litemaas_hooks.retire_models_v1(text[], boolean, text, double precision, text, boolean, text)')
         AS g (ok),
     LATERAL litemaas_hooks.retire_models_v1(CASE WHEN g.ok THEN %(ids)s::text[] END,
                                            %(cascade)s::boolean, %(reason)s::text,
                                            %(grace)s::float8, %(instance)s::text,
                                            %(hold)s::boolean, %(timeout)s::text) AS r

-- name: write_models_one_trip
-- The relay's one-round-trip write (adds and updates), as ONE statement: its own transaction, no
-- BEGIN or COMMIT around it. This transaction's lock timeout, then the names' locks
-- (try_lock_models_v1), then for the names not busy the upsert (upsert_models_v1) and their
-- sources and instances (note_model_sources_v1, note_model_instances_v1 when %(instance)s is not
-- NULL). Each step reads the one before it (LATERAL): they run in that order, once each. The
-- records are taken apart and put together again only when a name is busy. One row: the busy
-- names, the upsert's model ids and outcomes (two arrays, in the same order), then the notes.
-- Used where write_models_v1 is missing or not granted (an install, or the relay role's grants,
-- older than this code): backend_sink.write_one_trip falls back to it.
SELECT b.busy, u.ids, u.outcomes, s.sources, s.instances
FROM (SELECT pg_catalog.set_config('lock_timeout', %(timeout)s, true) AS timeout) AS t,
     LATERAL (
         SELECT coalesce(litemaas_hooks.try_lock_models_v1(
                    CASE WHEN g.ok AND t.timeout IS NOT NULL THEN %(ids)s::text[] END, false),
                    '{}') AS busy
         FROM litemaas_hooks.check_function_v1('litemaas_hooks.try_lock_models_v1(text[], boolean)')
              AS g (ok)
     ) AS b,
     LATERAL (
         SELECT CASE WHEN b.busy = '{}' THEN %(models)s::jsonb ELSE (
             SELECT coalesce(pg_catalog.jsonb_agg(r.value ORDER BY r.ordinality), '[]'::jsonb)
             FROM pg_catalog.jsonb_array_elements(%(models)s::jsonb) WITH ORDINALITY
                  AS r (value, ordinality)
             WHERE (r.value ->> 'id') <> ALL (b.busy)
         ) END AS models
     ) AS f,
     LATERAL (
         SELECT pg_catalog.array_agg(w.model_id ORDER BY w.model_id) AS ids,
                pg_catalog.array_agg(w.outcome ORDER BY w.model_id) AS outcomes
         FROM litemaas_hooks.check_function_v1('litemaas_hooks.upsert_models_v1(jsonb)') AS g (ok),
              LATERAL litemaas_hooks.upsert_models_v1(CASE WHEN g.ok THEN f.models END) AS w
     ) AS u,
     LATERAL (
         SELECT litemaas_hooks.note_model_sources_v1(CASE WHEN g.ok THEN n.ids END, n.from_db)
                    AS sources,
                CASE WHEN %(instance)s::text IS NOT NULL THEN
                    litemaas_hooks.note_model_instances_v1(CASE WHEN h.ok THEN n.ids END,
                                                           %(instance)s::text)
                END AS instances
         FROM litemaas_hooks.check_function_v1(
                  'litemaas_hooks.note_model_sources_v1(text[], boolean[])') AS g (ok),
              litemaas_hooks.check_function_v1(
                  'litemaas_hooks.note_model_instances_v1(text[], text)') AS h (ok),
              LATERAL (
                  SELECT pg_catalog.array_agg(i.id ORDER BY i.id) AS ids,
                         pg_catalog.array_agg(i.from_db ORDER BY i.id) AS from_db
                  FROM ROWS FROM (pg_catalog.unnest(%(source_ids)s::text[]),
                                 pg_catalog.unnest(%(from_db)s::boolean[])) AS i (id, from_db)
                  WHERE i.id <> ALL (b.busy)
              ) AS n
     ) AS s

-- name: set_lock_timeout
-- Our transaction waits at most this long for any lock (then 55P03: the names are retried later).
SELECT set_config('lock_timeout', %(timeout)s, true)

-- name: note_model_sources
SELECT litemaas_hooks.note_model_sources_v1(CASE WHEN g.ok THEN %(ids)s::text[] END,
                                            %(from_db)s::boolean[])
FROM litemaas_hooks.check_function_v1('litemaas_hooks.note_model_sources_v1(text[], boolean[])')
     AS g (ok)

-- name: db_model_ids
SELECT d.id
FROM litemaas_hooks.check_function_v1('litemaas_hooks.db_model_ids_v1(text[])') AS g (ok),
     LATERAL litemaas_hooks.db_model_ids_v1(CASE WHEN g.ok THEN %(ids)s::text[] END) AS d (id)

-- name: retire_model_v2
SELECT litemaas_hooks.retire_model_v2(CASE WHEN g.ok THEN %(id)s END, %(cascade)s, %(reason)s,
                                      %(grace)s::float8, %(instance)s, %(hold)s) AS result
FROM litemaas_hooks.check_function_v1('litemaas_hooks.retire_model_v2(text, boolean, text, double precision, text, boolean)') AS g (ok)

-- name: claim_due_retires
SELECT d.id
FROM litemaas_hooks.check_function_v1('litemaas_hooks.claim_due_retires_v1(integer)') AS g (ok),
     LATERAL litemaas_hooks.claim_due_retires_v1(CASE WHEN g.ok THEN %(limit)s END) AS d (id)

-- name: claim_held_retires
SELECT d.id
FROM litemaas_hooks.check_function_v1('litemaas_hooks.claim_held_retires_v1(text[])') AS g (ok),
     LATERAL litemaas_hooks.claim_held_retires_v1(CASE WHEN g.ok THEN %(ids)s::text[] END) AS d (id)

-- name: cascade_pending
SELECT litemaas_hooks.cascade_pending_v1(CASE WHEN g.ok THEN %(id)s END, %(reason)s) AS result
FROM litemaas_hooks.check_function_v1('litemaas_hooks.cascade_pending_v1(text, text)') AS g (ok)

-- name: cascade_held
SELECT litemaas_hooks.cascade_held_v1(CASE WHEN g.ok THEN %(id)s END, %(reason)s) AS result
FROM litemaas_hooks.check_function_v1('litemaas_hooks.cascade_held_v1(text, text)') AS g (ok)

-- name: hold_retires
SELECT litemaas_hooks.hold_retires_v1(CASE WHEN g.ok THEN %(ids)s::text[] END, %(why)s) AS held
FROM litemaas_hooks.check_function_v1('litemaas_hooks.hold_retires_v1(text[], text)') AS g (ok)

-- name: retire_guard_total
SELECT CASE WHEN g.ok THEN litemaas_hooks.retire_guard_total_v1() END AS total
FROM litemaas_hooks.check_function_v1('litemaas_hooks.retire_guard_total_v1()') AS g (ok)

-- name: retire_queue
SELECT q.model_id, q.instance, q.marked_at, q.due_at, q.held_at, q.held_why, q.seconds_left
FROM litemaas_hooks.check_function_v1('litemaas_hooks.retire_queue_v1()') AS g (ok),
     LATERAL (SELECT * FROM litemaas_hooks.retire_queue_v1() WHERE g.ok) AS q

-- name: next_retire_due
SELECT CASE WHEN g.ok THEN litemaas_hooks.next_retire_due_v1() END AS seconds
FROM litemaas_hooks.check_function_v1('litemaas_hooks.next_retire_due_v1()') AS g (ok)

-- name: note_model_instances
SELECT litemaas_hooks.note_model_instances_v1(CASE WHEN g.ok THEN %(ids)s::text[] END, %(instance)s)
FROM litemaas_hooks.check_function_v1('litemaas_hooks.note_model_instances_v1(text[], text)') AS g (ok)

-- name: restore_model
SELECT litemaas_hooks.restore_model_v1(CASE WHEN g.ok THEN %(id)s END, %(apply)s) AS plan
FROM litemaas_hooks.check_function_v1('litemaas_hooks.restore_model_v1(text, boolean)') AS g (ok)

-- name: served_elsewhere
SELECT d.id
FROM litemaas_hooks.check_function_v1('litemaas_hooks.served_elsewhere_v1(text[], text)') AS g (ok),
     LATERAL litemaas_hooks.served_elsewhere_v1(CASE WHEN g.ok THEN %(ids)s::text[] END, %(instance)s)
         AS d (id)

-- name: begin
-- Explicit transaction statements for pipelined round trips (psycopg's transaction() syncs the
-- pipeline at its start and end: two extra round trips).
BEGIN

-- name: commit
COMMIT

-- name: savepoint_chunk
-- A chunk's pipelined write (reconcile._write_chunk): a failed statement rolls back to it.
SAVEPOINT litemaas_hooks_chunk

-- name: release_chunk
RELEASE SAVEPOINT litemaas_hooks_chunk

-- name: rollback_to_chunk
ROLLBACK TO SAVEPOINT litemaas_hooks_chunk

-- name: rollback
ROLLBACK
