-- Repeatable (run on every `litemaas-hooks install`): the current definition of litemaas_hooks.db_model_ids_v1.
-- Released migrations keep their original text; functions are code and live here, one per file.

-- Of the given backend models, those that came from LiteLLM's database: noted by our sync
-- (model_sources.from_db), or written by the backend's own sync from a deployment LiteLLM reported as
-- stored in its database (metadata.litellm_model_info.db_model = true) and never noted otherwise.
CREATE OR REPLACE FUNCTION litemaas_hooks.db_model_ids_v1(p_ids text[])
RETURNS SETOF text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT m.id::text
    FROM (SELECT DISTINCT x FROM unnest(p_ids) AS x) AS wanted (id)
    JOIN public.models AS m ON m.id = wanted.id
    LEFT JOIN litemaas_hooks.model_sources AS s ON s.model_id = m.id
    WHERE coalesce(s.from_db,
                   jsonb_typeof(m.metadata -> 'litellm_model_info' -> 'db_model') = 'boolean'
                   AND (m.metadata -> 'litellm_model_info' ->> 'db_model')::boolean)
$$;
