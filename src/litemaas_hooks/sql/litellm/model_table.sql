-- Reads of LiteLLM's own model table (owned by LiteLLM; we only ever read it).

-- name: deployments_all
SELECT model_id, model_name, litellm_params, model_info, updated_at, blocked
FROM public."LiteLLM_ProxyModelTable"
ORDER BY model_name, model_id

-- name: deployments_by_name
SELECT model_id, model_name, litellm_params, model_info, updated_at, blocked
FROM public."LiteLLM_ProxyModelTable"
WHERE model_name = ANY (%(names)s::text[])
ORDER BY model_name, model_id
