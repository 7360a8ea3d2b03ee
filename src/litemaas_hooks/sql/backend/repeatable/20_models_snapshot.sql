-- Repeatable (run on every `litemaas-hooks install`): the current definition of litemaas_hooks.models_snapshot_v1.
-- Released migrations keep their original text; functions are code and live here, one per file.

-- The synced columns of the given rows (all rows when p_ids is NULL), plus why we hid them.
-- A hand-made row (no litellm_model_id, no LiteLLM metadata: no sync wrote it) is the backend's
-- own: its id only (so that nothing of ours writes over it), every other column NULL. The relay
-- role reads nothing of it (docs/relay-role.md).
-- PL/pgSQL, not SQL: a SQL function that cannot be inlined (SECURITY DEFINER, SET search_path) is
-- parsed and planned again at every call (~0.3 ms on each change the relay applies); PL/pgSQL keeps
-- the plan for the session. The casts make the columns exactly the declared types (RETURN QUERY
-- insists) whatever the backend's own column types are (varchar(255) today).
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
    RETURN QUERY
        WITH picked AS (
            SELECT m.*, h.reason AS hidden_reason
            FROM public.models AS m
            LEFT JOIN litemaas_hooks.hidden_models AS h ON h.model_id = m.id
            WHERE p_ids IS NULL
            UNION ALL
            -- a join, not `id = ANY (p_ids)`: thousands of ids stay a hash/index join, not a scan
            -- per id
            SELECT m.*, h.reason
            FROM (SELECT DISTINCT x FROM unnest(p_ids) AS x) AS wanted (id)
            JOIN public.models AS m ON m.id = wanted.id
            LEFT JOIN litemaas_hooks.hidden_models AS h ON h.model_id = m.id
        )
        -- a hand-made row gets no lateral row, so every column but its id is NULL (it never has a
        -- litellm_model_id: that alone makes a row synced)
        SELECT p.id::text, s.*
        FROM picked AS p
        LEFT JOIN LATERAL (
            SELECT p.name::text, p.provider::text, p.description::text, p.category::text,
                   p.context_length::integer, p.input_cost_per_token::numeric,
                   p.output_cost_per_token::numeric, p.supports_vision::boolean,
                   p.supports_function_calling::boolean, p.supports_tool_choice::boolean,
                   p.supports_parallel_function_calling::boolean, p.supports_streaming::boolean,
                   p.features::text[], p.availability::text, p.version::text, p.metadata::jsonb,
                   p.api_base::text, p.tpm::integer, p.rpm::integer, p.max_tokens::integer,
                   p.litellm_model_id::text, p.backend_model_name::text, p.hidden_reason::text
            WHERE p.litellm_model_id IS NOT NULL
               OR coalesce(p.metadata ? 'litellm_model_info' OR p.metadata ? 'litellm_params',
                           false)
        ) AS s ON true;
END;
$$;
