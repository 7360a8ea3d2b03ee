-- Repeatable (run on every `litemaas-hooks install`): the current definition of litemaas_hooks.models_snapshot_v1.
-- Released migrations keep their original text; functions are code and live here, one per file.

-- The synced columns of the given rows (all rows when p_ids is NULL), plus why we hid them.
CREATE OR REPLACE FUNCTION litemaas_hooks.models_snapshot_v1(p_ids text[])
RETURNS TABLE (
    id text, name text, provider text, description text, category text, context_length integer,
    input_cost_per_token numeric, output_cost_per_token numeric,
    supports_vision boolean, supports_function_calling boolean, supports_tool_choice boolean,
    supports_parallel_function_calling boolean, supports_streaming boolean, features text[],
    availability text, version text, metadata jsonb, api_base text, tpm integer, rpm integer,
    max_tokens integer, litellm_model_id text, backend_model_name text, hidden_reason text
)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT m.id, m.name, m.provider, m.description, m.category, m.context_length,
           m.input_cost_per_token, m.output_cost_per_token,
           m.supports_vision, m.supports_function_calling, m.supports_tool_choice,
           m.supports_parallel_function_calling, m.supports_streaming, m.features,
           m.availability, m.version, m.metadata, m.api_base, m.tpm, m.rpm,
           m.max_tokens, m.litellm_model_id, m.backend_model_name, h.reason
    FROM public.models AS m
    LEFT JOIN litemaas_hooks.hidden_models AS h ON h.model_id = m.id
    WHERE p_ids IS NULL
    UNION ALL
    -- a join, not `id = ANY (p_ids)`: thousands of ids stay a hash/index join, not a scan per id
    SELECT m.id, m.name, m.provider, m.description, m.category, m.context_length,
           m.input_cost_per_token, m.output_cost_per_token,
           m.supports_vision, m.supports_function_calling, m.supports_tool_choice,
           m.supports_parallel_function_calling, m.supports_streaming, m.features,
           m.availability, m.version, m.metadata, m.api_base, m.tpm, m.rpm,
           m.max_tokens, m.litellm_model_id, m.backend_model_name, h.reason
    FROM (SELECT DISTINCT x FROM unnest(p_ids) AS x) AS wanted (id)
    JOIN public.models AS m ON m.id = wanted.id
    LEFT JOIN litemaas_hooks.hidden_models AS h ON h.model_id = m.id
$$;
