-- Reads of LiteLLM's own model table (owned by LiteLLM; we only ever read it). Only named columns
-- of built-in types are read, never whole rows: to_jsonb(t) would call casts the table's owner may
-- define for column types of its own, with the privileges of whoever runs the query. LiteLLM 1.81's
-- schema has no `blocked` column: the *_without_blocked variants read it as false (litellm_source
-- asks `model_table_columns` first). Every column is read without a cast: its type was checked to
-- be the built-in one LiteLLM uses.

-- name: model_table_columns
-- The type of each column we read (litellm_source checks them before any read): a column of a type
-- that is not the built-in one LiteLLM uses is refused, so no cast or operator a table owner can
-- define for a type of its own ever runs in our reads (with the privileges of whoever runs backfill
-- or status).
SELECT a.attname::text, a.atttypid::oid::bigint, pg_catalog.format_type(a.atttypid, a.atttypmod)
FROM pg_catalog.pg_attribute AS a
WHERE a.attrelid = pg_catalog.to_regclass('public."LiteLLM_ProxyModelTable"')
  AND a.attname IN ('model_id', 'model_name', 'litellm_params', 'model_info', 'created_at',
                    'updated_at', 'blocked')
  AND a.attnum > 0 AND NOT a.attisdropped

-- name: deployments_all
SELECT t.model_id, t.model_name, t.litellm_params, t.model_info, t.created_at, t.updated_at,
       coalesce(t.blocked, false) AS blocked
FROM public."LiteLLM_ProxyModelTable" AS t
ORDER BY t.model_name, t.model_id

-- name: deployments_all_without_blocked
SELECT t.model_id, t.model_name, t.litellm_params, t.model_info, t.created_at, t.updated_at, false AS blocked
FROM public."LiteLLM_ProxyModelTable" AS t
ORDER BY t.model_name, t.model_id

-- name: deployments_by_name
SELECT t.model_id, t.model_name, t.litellm_params, t.model_info, t.created_at, t.updated_at,
       coalesce(t.blocked, false) AS blocked
FROM public."LiteLLM_ProxyModelTable" AS t
-- a join, not `model_name = ANY (...)`: LiteLLM has no index on model_name; this stays one hash join
JOIN (SELECT DISTINCT x FROM pg_catalog.unnest(%(names)s::text[]) AS x) AS wanted (name) ON t.model_name = wanted.name
ORDER BY t.model_name, t.model_id

-- name: deployments_by_name_without_blocked
SELECT t.model_id, t.model_name, t.litellm_params, t.model_info, t.created_at, t.updated_at, false AS blocked
FROM public."LiteLLM_ProxyModelTable" AS t
JOIN (SELECT DISTINCT x FROM pg_catalog.unnest(%(names)s::text[]) AS x) AS wanted (name) ON t.model_name = wanted.name
ORDER BY t.model_name, t.model_id

-- name: nameless_deployments
SELECT t.model_id
FROM public."LiteLLM_ProxyModelTable" AS t
WHERE t.model_name IS NULL OR pg_catalog.btrim(t.model_name, %(blank)s) = ''
ORDER BY t.model_id
