-- Repeatable (run on every `litemaas-hooks install`): the current definition of litemaas_hooks.upsert_models_v1.
-- Released migrations keep their original text; functions are code and live here, one per file.

-- Idempotent, set-based upsert of a batch of model records (a jsonb array of objects).
-- Returns one row per input id: inserted | updated | unchanged. A row in sync is not written at all
-- (no updated_at churn). In sync = its compared columns equal the row that ANY live deployment of the
-- name yields (the record's "accepted" list: the backend's own sync leaves a name on whichever
-- deployment it processed last), its availability is what the rule below gives, and no description
-- is waiting to be filled in. metadata is written with the row but never compared (the backend's
-- modelsEqual does not compare it either). Never writes restricted_access, encrypted_api_key or
-- created_at; never overwrites a non-null description. Same decision as planning.py (the relay
-- relies on it).
-- Availability: 'available' on insert ('unavailable' when every deployment is blocked). An existing
-- row keeps its availability except for what the sync hid itself (litemaas_hooks.hidden_models):
-- a name whose deployments are all blocked is hidden once, when the row was written before the block
-- (metadata model_info.blocked not true); if it is shown while still blocked (the backend's sync does
-- that) it stays shown; a retired or blocked-hidden name served again is shown again (and a cascade
-- still waiting for it in pending_retires is dropped: nothing else changed). Any other
-- 'unavailable' (an admin's, or the backend's own sync's, which re-shows it itself) is never undone:
-- the caller cannot un-hide a model, and an admin's hide survives a delete + re-add of the name.
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
            litellm_model_id text, backend_model_name text, deployment_ids text[], all_blocked boolean,
            accepted jsonb
        )
    ),
    -- the compared columns of every acceptable row (each live deployment's), plus the record's own
    accepted AS (
        SELECT i.id AS for_id, a.name, a.provider, a.category, a.context_length,
               round(a.input_cost_per_token, 10) AS input_cost_per_token,
               round(a.output_cost_per_token, 10) AS output_cost_per_token,
               a.supports_vision, a.supports_function_calling, a.supports_tool_choice,
               a.supports_parallel_function_calling, a.supports_streaming, a.features, a.version,
               a.api_base, a.tpm, a.rpm, a.max_tokens, a.litellm_model_id, a.backend_model_name
        FROM input AS i
        CROSS JOIN LATERAL jsonb_to_recordset(
            CASE WHEN jsonb_typeof(i.accepted) = 'array' THEN i.accepted ELSE '[]'::jsonb END
        ) AS a (
            name text, provider text, category text, context_length integer,
            input_cost_per_token numeric, output_cost_per_token numeric,
            supports_vision boolean, supports_function_calling boolean, supports_tool_choice boolean,
            supports_parallel_function_calling boolean, supports_streaming boolean, features text[],
            version text, api_base text, tpm integer, rpm integer, max_tokens integer,
            litellm_model_id text, backend_model_name text
        )
        UNION ALL
        SELECT i.id, i.name, i.provider, i.category, i.context_length,
               round(i.input_cost_per_token, 10), round(i.output_cost_per_token, 10),
               i.supports_vision, i.supports_function_calling, i.supports_tool_choice,
               i.supports_parallel_function_calling, i.supports_streaming, i.features, i.version,
               i.api_base, i.tpm, i.rpm, i.max_tokens, i.litellm_model_id, i.backend_model_name
        FROM input AS i
    ),
    -- rows that already hold one accepted description (a hash join: a correlated EXISTS over this
    -- CTE was quadratic, 0.9 s for a batch of 500 new rows)
    described AS (
        SELECT a.for_id, true AS yes
        FROM accepted AS a
        JOIN public.models AS m ON m.id = a.for_id
        WHERE (m.name, m.provider, m.category, m.context_length,
                m.input_cost_per_token, m.output_cost_per_token,
                m.supports_vision, m.supports_function_calling, m.supports_tool_choice,
                m.supports_parallel_function_calling, m.supports_streaming, m.features,
                m.version, m.api_base, m.tpm, m.rpm, m.max_tokens,
                m.litellm_model_id, m.backend_model_name)
               IS NOT DISTINCT FROM
               (a.name, a.provider, a.category, a.context_length,
                a.input_cost_per_token, a.output_cost_per_token,
                coalesce(a.supports_vision, false), coalesce(a.supports_function_calling, false),
                coalesce(a.supports_tool_choice, false),
                coalesce(a.supports_parallel_function_calling, false),
                coalesce(a.supports_streaming, true), a.features,
                a.version, a.api_base, a.tpm, a.rpm, a.max_tokens,
                a.litellm_model_id, a.backend_model_name)
        GROUP BY a.for_id
    ),
    decided AS (
        SELECT i.*,
               round(i.input_cost_per_token, 10) AS in_cost,
               round(i.output_cost_per_token, 10) AS out_cost,
               CASE
                   WHEN m.id IS NULL THEN CASE WHEN i.all_blocked THEN 'unavailable' ELSE 'available' END
                   WHEN i.all_blocked
                        AND (h.reason IS NOT NULL
                             OR m.metadata -> 'litellm_model_info' -> 'blocked' = 'true'::jsonb)
                       THEN m.availability
                   WHEN i.all_blocked THEN 'unavailable'
                   WHEN h.reason IS NOT NULL THEN 'available'
                   -- any other 'unavailable' is an admin's or the backend's own decision: never undone here
                   ELSE m.availability
               END AS new_availability,
               (m.id IS NULL OR m.availability IS DISTINCT FROM 'unavailable') AS was_available,
               h.reason AS hidden_reason,
               m.id IS NOT NULL AS present,
               m.availability AS old_availability,
               (m.id IS NOT NULL AND m.description IS NULL AND i.description IS NOT NULL) AS fills_description,
               coalesce(x.yes, false) AS describes_a_deployment,
               (m.id IS NULL OR m.litellm_model_id IS NOT NULL
                OR coalesce(m.metadata ? 'litellm_model_info' OR m.metadata ? 'litellm_params', false)) AS owned
        FROM input AS i
        LEFT JOIN public.models AS m ON m.id = i.id
        LEFT JOIN litemaas_hooks.hidden_models AS h ON h.model_id = i.id
        LEFT JOIN described AS x ON x.for_id = i.id
    ),
    desired AS (
        SELECT d.*,
               (d.present AND d.describes_a_deployment AND NOT d.fills_description
                AND d.new_availability IS NOT DISTINCT FROM d.old_availability) AS in_sync
        FROM decided AS d
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
        WHERE NOT d.in_sync AND d.owned
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
        RETURNING m.id, (m.xmax = 0) AS inserted
    ),
    hide AS (
        INSERT INTO litemaas_hooks.hidden_models AS h (model_id, reason)
        SELECT d.id, 'blocked' FROM desired AS d
        WHERE d.owned AND d.all_blocked AND d.was_available AND d.hidden_reason IS NULL
          AND d.new_availability = 'unavailable'
        ON CONFLICT (model_id) DO NOTHING
        RETURNING h.model_id
    ),
    unhide AS (
        DELETE FROM litemaas_hooks.hidden_models AS h
        USING desired AS d
        WHERE h.model_id = d.id AND d.owned AND NOT coalesce(d.all_blocked, false)
        RETURNING h.model_id
    ),
    -- the name is served again: a cascade waiting for its grace period (or held) is off
    unpend AS (
        DELETE FROM litemaas_hooks.pending_retires AS p
        USING desired AS d
        WHERE p.model_id = d.id AND d.owned
        RETURNING p.model_id
    )
    SELECT d.id,
           CASE WHEN w.id IS NULL THEN 'unchanged' WHEN w.inserted THEN 'inserted' ELSE 'updated' END
    FROM desired AS d
    LEFT JOIN written AS w ON w.id = d.id;
END;
$$;

-- The metadata we write (the proxy's whole /model/info entry, ~9 KB per model) is compressed with lz4
-- where the server has it (PostgreSQL >= 14 built with lz4): about twice as fast to write as the
-- default pglz, read the same way by every client. A compression set on the column itself
-- (ALTER TABLE ... SET COMPRESSION) still wins; the setting ends with each call.
DO $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM pg_catalog.pg_settings
        WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)
    ) THEN
        ALTER FUNCTION litemaas_hooks.upsert_models_v1(jsonb) SET default_toast_compression = 'lz4';
    END IF;
END;
$$;
