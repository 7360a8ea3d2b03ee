-- litemaas-hooks, backend database: the functions that write public.models.
-- Everything of ours lives in schema litemaas_hooks; the backend's own objects are never redefined.
-- Functions are SECURITY DEFINER with a pinned search_path, so the relay's role only needs
-- USAGE on the schema and EXECUTE on these functions (see README, "Database privileges").

CREATE SCHEMA IF NOT EXISTS litemaas_hooks;

-- Models that the sync itself made unavailable, and why. Only these are made available again
-- automatically; a model an admin hid (availability = 'unavailable' with no row here) stays hidden.
CREATE TABLE IF NOT EXISTS litemaas_hooks.hidden_models (
    model_id  varchar(255) PRIMARY KEY,
    reason    text        NOT NULL CHECK (reason IN ('retired', 'blocked')),
    hidden_at timestamptz NOT NULL DEFAULT now()
);

-- Serialise every writer of the same model names: a global shared lock (a full reconcile takes it
-- exclusively), then one exclusive lock per name, always in key order so two writers never deadlock.
CREATE OR REPLACE FUNCTION litemaas_hooks.lock_models_v1(p_ids text[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k bigint;
BEGIN
    IF p_ids IS NULL THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('litemaas_hooks.models', 0));
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock_shared(hashtextextended('litemaas_hooks.models', 0));
    FOR k IN
        SELECT DISTINCT hashtextextended('litemaas_hooks.model:' || id, 0) AS key
        FROM unnest(p_ids) AS id
        ORDER BY key
    LOOP
        PERFORM pg_advisory_xact_lock(k);
    END LOOP;
END;
$$;

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

-- Every model id in the backend (a full reconcile with --retire-missing walks them in chunks).
CREATE OR REPLACE FUNCTION litemaas_hooks.model_ids_v1()
RETURNS SETOF text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT m.id::text FROM public.models AS m
$$;

-- Idempotent, set-based upsert of a batch of model records (a jsonb array of objects).
-- Returns one row per input id: inserted | updated | unchanged. A row whose synced columns already
-- hold the given values is not written at all (no updated_at churn). Never writes restricted_access,
-- encrypted_api_key or created_at; never overwrites a non-null description.
-- Availability: 'available' on insert; set back to 'available' only when the sync itself hid the
-- model (retired or every deployment blocked) or when the deployment the row described is gone and
-- another one now serves the name; otherwise an admin's choice is kept.
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
               h.reason AS hidden_reason
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
        WHERE d.all_blocked AND d.was_available AND d.hidden_reason IS NULL
        ON CONFLICT (model_id) DO NOTHING
        RETURNING h.model_id
    ),
    unhide AS (
        DELETE FROM litemaas_hooks.hidden_models AS h
        USING desired AS d
        WHERE h.model_id = d.id AND NOT coalesce(d.all_blocked, false)
        RETURNING h.model_id
    )
    SELECT d.id,
           CASE WHEN w.id IS NULL THEN 'unchanged' WHEN w.inserted THEN 'inserted' ELSE 'updated' END
    FROM desired AS d
    LEFT JOIN written AS w ON w.id = d.id;
END;
$$;

-- Soft retire, in the caller's transaction: availability -> 'unavailable'; with p_cascade, active
-- subscriptions -> 'inactive', the model's api_key_models rows deleted, active keys left with no
-- model deactivated; one audit_logs row. Idempotent: a model already retired by us is left alone.
CREATE OR REPLACE FUNCTION litemaas_hooks.retire_model_v1(p_model_id text, p_cascade boolean, p_reason text)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_availability text;
    v_subscriptions integer := 0;
    v_key_links integer := 0;
    v_keys integer := 0;
    v_key_ids uuid[];
    v_counts jsonb;
BEGIN
    SELECT m.availability INTO v_availability FROM public.models AS m WHERE m.id = p_model_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('found', false, 'retired', false);
    END IF;
    IF EXISTS (SELECT 1 FROM litemaas_hooks.hidden_models AS h
               WHERE h.model_id = p_model_id AND h.reason = 'retired') THEN
        RETURN jsonb_build_object('found', true, 'retired', false, 'already_retired', true);
    END IF;

    UPDATE public.models SET availability = 'unavailable'
    WHERE id = p_model_id AND availability IS DISTINCT FROM 'unavailable';

    INSERT INTO litemaas_hooks.hidden_models (model_id, reason) VALUES (p_model_id, 'retired')
    ON CONFLICT (model_id) DO UPDATE SET reason = 'retired', hidden_at = now();

    IF p_cascade THEN
        UPDATE public.subscriptions SET status = 'inactive', updated_at = CURRENT_TIMESTAMP
        WHERE model_id = p_model_id AND status = 'active';
        GET DIAGNOSTICS v_subscriptions = ROW_COUNT;

        WITH removed AS (
            DELETE FROM public.api_key_models WHERE model_id = p_model_id RETURNING api_key_id
        )
        SELECT coalesce(array_agg(DISTINCT api_key_id), '{}') INTO v_key_ids FROM removed;
        v_key_links := coalesce(cardinality(v_key_ids), 0);

        UPDATE public.api_keys AS k SET is_active = false, updated_at = CURRENT_TIMESTAMP
        WHERE k.id = ANY (v_key_ids) AND k.is_active
          AND NOT EXISTS (SELECT 1 FROM public.api_key_models AS akm WHERE akm.api_key_id = k.id);
        GET DIAGNOSTICS v_keys = ROW_COUNT;
    END IF;

    v_counts := jsonb_build_object(
        'subscriptionsDeactivated', v_subscriptions,
        'apiKeyModelLinksRemoved', v_key_links,
        'apiKeysDeactivated', v_keys
    );
    INSERT INTO public.audit_logs (user_id, action, resource_type, resource_id, old_values, new_values,
                                   success, metadata)
    VALUES (NULL,
            CASE WHEN p_cascade THEN 'MODEL_MARKED_UNAVAILABLE_WITH_CASCADE' ELSE 'MODEL_MARKED_UNAVAILABLE' END,
            'MODEL', p_model_id,
            jsonb_build_object('availability', v_availability),
            jsonb_build_object('availability', 'unavailable'),
            true,
            v_counts || jsonb_build_object('source', 'litemaas-hooks', 'reason', p_reason,
                                           'cascade', p_cascade));
    RETURN jsonb_build_object('found', true, 'retired', true) || v_counts;
END;
$$;
