-- Reads of LiteLLM's own model table (owned by LiteLLM; we only ever read it).
-- `blocked` is read through to_jsonb: LiteLLM 1.81's schema has no such column.

-- name: deployments_all
SELECT t.model_id, t.model_name, t.litellm_params, t.model_info, t.created_at, t.updated_at,
       coalesce((to_jsonb(t) ->> 'blocked')::boolean, false) AS blocked
FROM public."LiteLLM_ProxyModelTable" AS t
ORDER BY t.model_name, t.model_id

-- name: deployments_by_name
SELECT t.model_id, t.model_name, t.litellm_params, t.model_info, t.created_at, t.updated_at,
       coalesce((to_jsonb(t) ->> 'blocked')::boolean, false) AS blocked
FROM public."LiteLLM_ProxyModelTable" AS t
-- a join, not `model_name = ANY (...)`: LiteLLM has no index on model_name; this stays one hash join
JOIN (SELECT DISTINCT x FROM unnest(%(names)s::text[]) AS x) AS wanted (name) ON t.model_name = wanted.name
ORDER BY t.model_name, t.model_id

-- name: model_names
SELECT DISTINCT t.model_name
FROM public."LiteLLM_ProxyModelTable" AS t
WHERE t.model_name IS NOT NULL AND btrim(t.model_name) <> ''

-- name: nameless_deployments
SELECT t.model_id
FROM public."LiteLLM_ProxyModelTable" AS t
WHERE t.model_name IS NULL OR btrim(t.model_name) = ''
ORDER BY t.model_id
