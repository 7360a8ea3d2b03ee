-- Repeatable (run on every `litemaas-hooks install`): the current definition of litemaas_hooks.upsert_models_v1.
-- Released migrations keep their original text; functions are code and live here, one per file.

-- Idempotent, set-based upsert of a batch of model records (a jsonb array of objects).
-- Returns one row per input id: inserted | updated | unchanged. A row whose synced columns already
-- hold the given values is not written at all (no updated_at churn). Never writes restricted_access,
-- encrypted_api_key or created_at; never overwrites a non-null description.
-- Availability: 'available' on insert; set back to 'available' only when the sync itself hid the
-- model (retired or every deployment blocked) or when the deployment the row described is gone and
-- another one now serves the name; otherwise an admin's choice is kept.
-- A hand-made row (no litellm_model_id, no LiteLLM metadata: not written by a sync) is never touched,
-- whatever the caller passes (outcome 'unchanged'): the relay's role cannot repoint it.
-- SECURITY DEFINER, owned by the owner of public.models (90_privileges.sql).
CREATE OR REPLACE FUNCTION litemaas_hooks.upsert_models_v1(p_models jsonb)
RETURNS TABLE (model_id text, outcome text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH input AS (
        SELECT r.*
        FROM jsonb_to_recordset(p_models) AS r (
            id text, name text, provider text, description text, category text, context_length integer,
            input_cost_per_token numeric, output_cost_per_token numeric,
            supports_vision boolean, supports_function_calling boolean, supports_tool_choice boolean,
            supports_parallel_function_calling boolean, supports_streaming boolean, features text[],
            version text, metadata jsonb, api_base text, tpm integer, rpm integer, max_tokens integer,
            litellm_model_id text, backend_model_name text, deployment_ids text[], all_blocked boolean
        )
    ),
    desired AS (
        SELECT i.*,
               round(i.input_cost_per_token, 10) AS in_cost,
               round(i.output_cost_per_token, 10) AS out_cost,
               CASE
                   WHEN m.id IS NULL THEN CASE WHEN i.all_blocked THEN 'unavailable' ELSE 'available' END
                   WHEN i.all_blocked THEN 'unavailable'
                   WHEN h.reason IS NOT NULL THEN 'available'
                   WHEN m.availability = 'unavailable'
                        AND m.litellm_model_id IS NOT NULL
                        AND m.litellm_model_id <> m.id
                        AND NOT (m.litellm_model_id = ANY (coalesce(i.deployment_ids, '{}')))
                       THEN 'available'
                   ELSE m.availability
               END AS new_availability,
               (m.id IS NULL OR m.availability IS DISTINCT FROM 'unavailable') AS was_available,
               h.reason AS hidden_reason,
               (m.id IS NULL OR m.litellm_model_id IS NOT NULL
                OR coalesce(m.metadata ? 'litellm_model_info' OR m.metadata ? 'litellm_params', false)) AS owned
        FROM input AS i
        LEFT JOIN public.models AS m ON m.id = i.id
        LEFT JOIN litemaas_hooks.hidden_models AS h ON h.model_id = i.id
    ),
    written AS (
        INSERT INTO public.models AS m (
            id, name, provider, description, category, context_length,
            input_cost_per_token, output_cost_per_token,
            supports_vision, supports_function_calling, supports_tool_choice,
            supports_parallel_function_calling, supports_streaming, features,
            availability, version, metadata, api_base, tpm, rpm, max_tokens,
            litellm_model_id, backend_model_name
        )
        SELECT d.id, d.name, d.provider, d.description, d.category, d.context_length,
               d.in_cost, d.out_cost,
               coalesce(d.supports_vision, false), coalesce(d.supports_function_calling, false),
               coalesce(d.supports_tool_choice, false), coalesce(d.supports_parallel_function_calling, false),
               coalesce(d.supports_streaming, true), d.features,
               d.new_availability, d.version, coalesce(d.metadata, '{}'::jsonb), d.api_base,
               d.tpm, d.rpm, d.max_tokens, d.litellm_model_id, d.backend_model_name
        FROM desired AS d
        WHERE d.owned
        ON CONFLICT (id) DO UPDATE SET
            name = EXCLUDED.name,
            provider = EXCLUDED.provider,
            description = coalesce(m.description, EXCLUDED.description),
            category = EXCLUDED.category,
            context_length = EXCLUDED.context_length,
            input_cost_per_token = EXCLUDED.input_cost_per_token,
            output_cost_per_token = EXCLUDED.output_cost_per_token,
            supports_vision = EXCLUDED.supports_vision,
            supports_function_calling = EXCLUDED.supports_function_calling,
            supports_tool_choice = EXCLUDED.supports_tool_choice,
            supports_parallel_function_calling = EXCLUDED.supports_parallel_function_calling,
            supports_streaming = EXCLUDED.supports_streaming,
            features = EXCLUDED.features,
            availability = EXCLUDED.availability,
            version = EXCLUDED.version,
            metadata = EXCLUDED.metadata,
            api_base = EXCLUDED.api_base,
            tpm = EXCLUDED.tpm,
            rpm = EXCLUDED.rpm,
            max_tokens = EXCLUDED.max_tokens,
            litellm_model_id = EXCLUDED.litellm_model_id,
            backend_model_name = EXCLUDED.backend_model_name
        WHERE (m.name, m.provider, m.category, m.context_length,
               m.input_cost_per_token, m.output_cost_per_token,
               m.supports_vision, m.supports_function_calling, m.supports_tool_choice,
               m.supports_parallel_function_calling, m.supports_streaming, m.features,
               m.availability, m.version, m.metadata, m.api_base, m.tpm, m.rpm, m.max_tokens,
               m.litellm_model_id, m.backend_model_name)
              IS DISTINCT FROM
              (EXCLUDED.name, EXCLUDED.provider, EXCLUDED.category, EXCLUDED.context_length,
               EXCLUDED.input_cost_per_token, EXCLUDED.output_cost_per_token,
               EXCLUDED.supports_vision, EXCLUDED.supports_function_calling, EXCLUDED.supports_tool_choice,
               EXCLUDED.supports_parallel_function_calling, EXCLUDED.supports_streaming, EXCLUDED.features,
               EXCLUDED.availability, EXCLUDED.version, EXCLUDED.metadata, EXCLUDED.api_base,
               EXCLUDED.tpm, EXCLUDED.rpm, EXCLUDED.max_tokens,
               EXCLUDED.litellm_model_id, EXCLUDED.backend_model_name)
           OR (m.description IS NULL AND EXCLUDED.description IS NOT NULL)
        RETURNING m.id, (m.xmax = 0) AS inserted
    ),
    hide AS (
        INSERT INTO litemaas_hooks.hidden_models AS h (model_id, reason)
        SELECT d.id, 'blocked' FROM desired AS d
        WHERE d.owned AND d.all_blocked AND d.was_available AND d.hidden_reason IS NULL
        ON CONFLICT (model_id) DO NOTHING
        RETURNING h.model_id
    ),
    unhide AS (
        DELETE FROM litemaas_hooks.hidden_models AS h
        USING desired AS d
        WHERE h.model_id = d.id AND d.owned AND NOT coalesce(d.all_blocked, false)
        RETURNING h.model_id
    )
    SELECT d.id,
           CASE WHEN w.id IS NULL THEN 'unchanged' WHEN w.inserted THEN 'inserted' ELSE 'updated' END
    FROM desired AS d
    LEFT JOIN written AS w ON w.id = d.id;
END;
$$;
