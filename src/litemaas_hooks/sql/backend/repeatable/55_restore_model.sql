-- Repeatable (run on every `litemaas-hooks install`): the current definition of litemaas_hooks.restore_model_v1.
-- Released migrations keep their original text; functions are code and live here, one per file.

-- Put back exactly what the retire cascades of one model deactivated (retire_cascades rows not yet
-- restored), and only what is still in the state the cascade left it: a subscription still
-- 'inactive' with the cascade's updated_at (one the user re-created or anybody changed since is left
-- alone: never a duplicate), a key still inactive, not revoked, with the cascade's updated_at, a key
-- link whose key and model still exist. p_apply = false: the plan only (nothing written).
-- Applying needs the model available again (bring it back in LiteLLM first); one audit row
-- (MODEL_CASCADE_RESTORED) per applied restore. Not for the relay's role: an operator command.
-- SECURITY DEFINER, owned by the owner of public.models (90_privileges.sql).
CREATE OR REPLACE FUNCTION litemaas_hooks.restore_model_v1(p_model_id text, p_apply boolean)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_available boolean;
    v_cascades bigint[];
    v_subs uuid[];
    v_subs_recorded integer;
    v_links jsonb;
    v_links_recorded integer;
    v_keys uuid[];
    v_keys_recorded integer;
    v_plan jsonb;
BEGIN
    SELECT m.availability IS DISTINCT FROM 'unavailable' INTO v_available
    FROM public.models AS m WHERE m.id = p_model_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('model', p_model_id, 'found', false, 'cascades', 0, 'applied', false);
    END IF;
    v_cascades := ARRAY(SELECT c.id FROM litemaas_hooks.retire_cascades AS c
                        WHERE c.model_id = p_model_id AND c.restored_at IS NULL ORDER BY c.id FOR UPDATE);

    -- subscriptions the cascades deactivated, still exactly as the cascade left them
    SELECT count(*)::integer,
           coalesce(array_agg(s.id ORDER BY s.id) FILTER (
               WHERE s.status = 'inactive' AND s.updated_at = c.cascaded_at), '{}')
    INTO v_subs_recorded, v_subs
    FROM litemaas_hooks.retire_cascades AS c
    CROSS JOIN LATERAL jsonb_array_elements(c.subscriptions) AS e (sub)
    LEFT JOIN public.subscriptions AS s ON s.id = (e.sub ->> 'id')::uuid AND s.model_id = c.model_id
    WHERE c.id = ANY (v_cascades);

    -- key links removed, whose key still exists and which nobody put back
    SELECT count(*)::integer,
           coalesce(jsonb_agg(e.link) FILTER (
               WHERE k.id IS NOT NULL AND akm.api_key_id IS NULL), '[]')
    INTO v_links_recorded, v_links
    FROM litemaas_hooks.retire_cascades AS c
    CROSS JOIN LATERAL jsonb_array_elements(c.key_links) AS e (link)
    LEFT JOIN public.api_keys AS k ON k.id = (e.link ->> 'api_key_id')::uuid
    LEFT JOIN public.api_key_models AS akm
        ON akm.api_key_id = k.id AND akm.model_id = c.model_id
    WHERE c.id = ANY (v_cascades);

    -- keys deactivated, still inactive as the cascade left them (not revoked, not touched since)
    SELECT count(*)::integer,
           coalesce(array_agg(k.id ORDER BY k.id) FILTER (
               WHERE NOT k.is_active AND k.revoked_at IS NULL AND k.updated_at = c.cascaded_at), '{}')
    INTO v_keys_recorded, v_keys
    FROM litemaas_hooks.retire_cascades AS c
    CROSS JOIN LATERAL jsonb_array_elements_text(c.api_keys) AS e (key_id)
    LEFT JOIN public.api_keys AS k ON k.id = e.key_id::uuid
    WHERE c.id = ANY (v_cascades);

    v_plan := jsonb_build_object(
        'model', p_model_id, 'found', true, 'model_available', v_available,
        'cascades', cardinality(v_cascades),
        'subscriptions', to_jsonb(v_subs),
        'subscriptionsSkipped', v_subs_recorded - cardinality(v_subs),
        'keyLinks', jsonb_array_length(v_links),
        'keyLinksSkipped', v_links_recorded - jsonb_array_length(v_links),
        'apiKeys', to_jsonb(v_keys),
        'apiKeysSkipped', v_keys_recorded - cardinality(v_keys),
        'applied', false);
    IF NOT p_apply OR cardinality(v_cascades) = 0 THEN
        RETURN v_plan;
    END IF;
    IF NOT v_available THEN
        RAISE EXCEPTION USING
            MESSAGE = pg_catalog.format('model %s is unavailable: nothing restored', p_model_id),
            HINT = 'bring the model back in LiteLLM first (or make it available), then run restore again',
            ERRCODE = 'object_not_in_prerequisite_state';
    END IF;

    UPDATE public.subscriptions AS s SET status = 'active', updated_at = CURRENT_TIMESTAMP
    WHERE s.id = ANY (v_subs) AND s.status = 'inactive';
    INSERT INTO public.api_key_models (api_key_id, model_id, created_at)
    SELECT (l ->> 'api_key_id')::uuid, p_model_id, (l ->> 'created_at')::timestamptz
    FROM jsonb_array_elements(v_links) AS l
    ON CONFLICT DO NOTHING;
    UPDATE public.api_keys AS k SET is_active = true, updated_at = CURRENT_TIMESTAMP
    WHERE k.id = ANY (v_keys) AND NOT k.is_active;
    UPDATE litemaas_hooks.retire_cascades AS c SET restored_at = now() WHERE c.id = ANY (v_cascades);

    INSERT INTO public.audit_logs (user_id, action, resource_type, resource_id, old_values, new_values,
                                   success, metadata)
    VALUES (NULL, 'MODEL_CASCADE_RESTORED', 'MODEL', p_model_id, NULL, NULL, true,
            jsonb_build_object(
                'source', 'litemaas-hooks',
                'subscriptionsReactivated', cardinality(v_subs),
                'apiKeyModelLinksRestored', jsonb_array_length(v_links),
                'apiKeysReactivated', cardinality(v_keys),
                'cascades', cardinality(v_cascades)));
    RETURN v_plan || jsonb_build_object('applied', true);
END;
$$;
