-- Repeatable (run on every `litemaas-hooks install`): the current definition of litemaas_hooks.retire_model_v1.
-- Released migrations keep their original text; functions are code and live here, one per file.

-- Soft retire, in the caller's transaction: availability -> 'unavailable'; with p_cascade, active
-- subscriptions -> 'inactive', the model's api_key_models rows deleted, active keys left with no
-- model deactivated; one audit_logs row. Idempotent: a model already retired by us is left alone.
-- What the caller (the relay's role, through EXECUTE alone) can do with it, and no more: retire a row
-- a sync wrote (litellm_model_id set, or LiteLLM metadata), never a hand-made one; record an admin-hidden
-- model as retired never (so a later upsert cannot make it available again); write an audit row only
-- for a retire it really made, with one of the known reasons (no free text in audit_logs).
-- SECURITY DEFINER, owned by the owner of public.models (90_privileges.sql).
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
    v_counts jsonb;
    v_from_litellm boolean;
BEGIN
    IF p_reason IS NULL OR p_reason NOT IN ('no deployment of this model_name is left in LiteLLM') THEN
        RAISE EXCEPTION USING
            MESSAGE = 'litemaas_hooks.retire_model_v1: unknown reason (audit rows only carry known reasons)',
            ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT m.availability,
           m.litellm_model_id IS NOT NULL
               OR coalesce(m.metadata ? 'litellm_model_info' OR m.metadata ? 'litellm_params', false)
      INTO v_availability, v_from_litellm
    FROM public.models AS m WHERE m.id = p_model_id
    -- NO KEY: a subscription's foreign-key check (FOR KEY SHARE) never waits for this row lock
    FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('found', false, 'retired', false);
    END IF;
    IF NOT v_from_litellm THEN
        -- hand-made row: not the sync's to retire
        RETURN jsonb_build_object('found', true, 'retired', false, 'hand_made', true);
    END IF;
    IF litemaas_hooks.litellm_has_name_v1(p_model_id) THEN
        -- LiteLLM (same database) still has a deployment of this name: not to be retired
        RETURN jsonb_build_object('found', true, 'retired', false, 'litellm_has_it', true);
    END IF;
    IF v_availability = 'unavailable' AND NOT EXISTS (
        SELECT 1 FROM litemaas_hooks.hidden_models AS h WHERE h.model_id = p_model_id
    ) THEN
        -- hidden by an admin: stays the admin's (no hidden_models row, no cascade, no audit row)
        RETURN jsonb_build_object('found', true, 'retired', false, 'admin_hidden', true);
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
        -- serialised per API key and recorded for `litemaas-hooks restore` (51_cascade_model.sql)
        v_counts := litemaas_hooks.cascade_model_v1(p_model_id);
        v_subscriptions := (v_counts ->> 'subscriptionsDeactivated')::integer;
        v_key_links := (v_counts ->> 'apiKeyModelLinksRemoved')::integer;
        v_keys := (v_counts ->> 'apiKeysDeactivated')::integer;
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
