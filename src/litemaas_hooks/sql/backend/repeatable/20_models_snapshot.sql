-- Repeatable (run on every `litemaas-hooks install`): the current definition of litemaas_hooks.models_snapshot_v1.
-- Released migrations keep their original text; functions are code and live here, one per file.

-- The synced columns of the given rows (all rows when p_ids is NULL), plus why we hid them.
-- PL/pgSQL, not SQL: a SQL function that cannot be inlined (SECURITY DEFINER, SET search_path) is
-- parsed and planned again at every call (~0.3 ms here, on each change the relay applies); PL/pgSQL
-- keeps the plan for the session. The casts make the columns exactly the declared types (RETURN
-- QUERY insists) whatever the backend's own column types are (varchar(255) today).
CREATE OR REPLACE FUNCTION litemaas_hooks.models_snapshot_v1(p_ids text[])
RETURNS TABLE (
    id text, name text, provider text, description text, category text, context_length integer,
    input_cost_per_token numeric, output_cost_per_token numeric,
    supports_vision boolean, supports_function_calling boolean, supports_tool_choice boolean,
    supports_parallel_function_calling boolean, supports_streaming boolean, features text[],
    availability text, version text, metadata jsonb, api_base text, tpm integer, rpm integer,
    max_tokens integer, litellm_model_id text, backend_model_name text, hidden_reason text
)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    IF p_ids IS NULL THEN
        RETURN QUERY
        SELECT m.id::text, m.name::text, m.provider::text, m.description::text, m.category::text,
               m.context_length::integer, m.input_cost_per_token::numeric,
               m.output_cost_per_token::numeric, m.supports_vision::boolean,
               m.supports_function_calling::boolean, m.supports_tool_choice::boolean,
               m.supports_parallel_function_calling::boolean, m.supports_streaming::boolean,
               m.features::text[], m.availability::text, m.version::text, m.metadata::jsonb,
               m.api_base::text, m.tpm::integer, m.rpm::integer, m.max_tokens::integer,
               m.litellm_model_id::text, m.backend_model_name::text, h.reason::text
        FROM public.models AS m
        LEFT JOIN litemaas_hooks.hidden_models AS h ON h.model_id = m.id;
        RETURN;
    END IF;
    RETURN QUERY
    -- a join, not `id = ANY (p_ids)`: thousands of ids stay a hash/index join, not a scan per id
    SELECT m.id::text, m.name::text, m.provider::text, m.description::text, m.category::text,
           m.context_length::integer, m.input_cost_per_token::numeric,
           m.output_cost_per_token::numeric, m.supports_vision::boolean,
           m.supports_function_calling::boolean, m.supports_tool_choice::boolean,
           m.supports_parallel_function_calling::boolean, m.supports_streaming::boolean,
           m.features::text[], m.availability::text, m.version::text, m.metadata::jsonb,
           m.api_base::text, m.tpm::integer, m.rpm::integer, m.max_tokens::integer,
           m.litellm_model_id::text, m.backend_model_name::text, h.reason::text
    FROM (SELECT DISTINCT x FROM unnest(p_ids) AS x) AS wanted (id)
    JOIN public.models AS m ON m.id = wanted.id
    LEFT JOIN litemaas_hooks.hidden_models AS h ON h.model_id = m.id;
END;
$$;
