-- Repeatable (run on every `litemaas-hooks install`): the current definition of litemaas_hooks.cascade_model_v1.
-- Released migrations keep their original text; functions are code and live here, one per file.

-- The retire cascade of one model, in the caller's transaction (called by the retire functions only:
-- no role but the owner may execute it): active subscriptions -> 'inactive', the model's api_key_models
-- rows deleted, active keys left with no model deactivated. Serialised per API key: the keys linked
-- to the model are locked (FOR NO KEY UPDATE, in id order) before their links go, so two concurrent cascades
-- of two models of one key cannot both see the other's link and leave the key active with no model.
-- Records exactly what it changed in retire_cascades (restore_model_v1 puts back exactly that).
-- Returns the counts; writes no audit row (the caller does).
-- SECURITY DEFINER, owned by the owner of public.models (90_privileges.sql).
CREATE OR REPLACE FUNCTION litemaas_hooks.cascade_model_v1(p_model_id text)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_subs jsonb;
    v_links jsonb;
    v_keys jsonb;
    v_key_ids uuid[];
BEGIN
    PERFORM 1 FROM public.api_keys AS k
    WHERE k.id IN (SELECT akm.api_key_id FROM public.api_key_models AS akm WHERE akm.model_id = p_model_id)
    ORDER BY k.id
    FOR NO KEY UPDATE OF k;  -- two cascades still exclude each other; a key's FK checks never wait

    WITH changed AS (
        UPDATE public.subscriptions AS s SET status = 'inactive', updated_at = CURRENT_TIMESTAMP
        WHERE s.model_id = p_model_id AND s.status = 'active'
        RETURNING s.id
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object('id', c.id, 'status', 'active') ORDER BY c.id), '[]')
    INTO v_subs FROM changed AS c;

    WITH removed AS (
        DELETE FROM public.api_key_models AS akm WHERE akm.model_id = p_model_id
        RETURNING akm.api_key_id, akm.model_id, akm.created_at
    )
    SELECT coalesce(jsonb_agg(to_jsonb(r) ORDER BY r.api_key_id), '[]'),
           coalesce(array_agg(DISTINCT r.api_key_id), '{}')
    INTO v_links, v_key_ids FROM removed AS r;

    WITH deactivated AS (
        UPDATE public.api_keys AS k SET is_active = false, updated_at = CURRENT_TIMESTAMP
        WHERE k.id = ANY (v_key_ids) AND k.is_active
          AND NOT EXISTS (SELECT 1 FROM public.api_key_models AS akm WHERE akm.api_key_id = k.id)
        RETURNING k.id
    )
    SELECT coalesce(jsonb_agg(d.id ORDER BY d.id), '[]') INTO v_keys FROM deactivated AS d;

    IF jsonb_array_length(v_subs) + jsonb_array_length(v_links) + jsonb_array_length(v_keys) > 0 THEN
        INSERT INTO litemaas_hooks.retire_cascades (model_id, cascaded_at, subscriptions, key_links, api_keys)
        VALUES (p_model_id, CURRENT_TIMESTAMP, v_subs, v_links, v_keys);
    END IF;
    RETURN jsonb_build_object(
        'subscriptionsDeactivated', jsonb_array_length(v_subs),
        'apiKeyModelLinksRemoved', jsonb_array_length(v_links),
        'apiKeysDeactivated', jsonb_array_length(v_keys)
    );
END;
$$;
