-- Read-only queries of `litemaas-hooks apply` (its "Verify Sync" step) and `litemaas-hooks show`.
-- They read the backend's own tables as the operator's role; nothing here writes.

-- name: show_models
SELECT m.id, m.name, m.provider, m.category, m.description, m.availability, m.context_length,
       m.max_tokens, m.api_base, m.tpm, m.rpm, m.litellm_model_id, m.backend_model_name,
       m.supports_streaming, m.updated_at
FROM public.models AS m
WHERE m.id = ANY(%(ids)s::text[])
ORDER BY m.id

-- name: show_subscription_counts
SELECT s.model_id, s.status, pg_catalog.count(*) AS n
FROM public.subscriptions AS s
WHERE s.model_id = ANY(%(ids)s::text[])
GROUP BY s.model_id, s.status
ORDER BY s.model_id, s.status

-- name: read_only_session
SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY
