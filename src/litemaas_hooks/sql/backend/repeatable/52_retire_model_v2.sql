-- Repeatable (run on every `litemaas-hooks install`): the current definition of litemaas_hooks.retire_model_v2.
-- Released migrations keep their original text; functions are code and live here, one per file.

-- Soft retire with a grace period, in the caller's transaction. Same rules as retire_model_v1 (known
-- reasons only, hand-made rows never touched, an admin's hide stays the admin's), plus:
--   * p_instance (the LiteLLM instance retiring it, NULL = unknown): the name is no longer that
--     instance's; while another instance still has it (model_instances) nothing is retired;
--   * availability -> 'unavailable' at once (no new subscriptions);
--   * the cascade waits: with p_grace_seconds > 0 or p_hold a pending_retires row is written
--     (due after the grace; p_hold = held by the mass-retire guard until an operator confirms) and no
--     subscription, key or audit row is touched; the cascade and its audit row come with
--     cascade_pending_v1. A name that comes back before is simply available again (upsert_models_v1
--     drops the pending row). p_grace_seconds = 0 and no hold: the cascade now, as retire_model_v1.
--   * without p_cascade: unavailable with a MODEL_MARKED_UNAVAILABLE audit row, nothing pending.
-- SECURITY DEFINER, owned by the owner of public.models (90_privileges.sql).
CREATE OR REPLACE FUNCTION litemaas_hooks.retire_model_v2(
    p_model_id text, p_cascade boolean, p_reason text, p_grace_seconds double precision,
    p_instance text, p_hold boolean
)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_availability text;
    v_from_litellm boolean;
    v_others text[];
    v_counts jsonb := jsonb_build_object(
        'subscriptionsDeactivated', 0, 'apiKeyModelLinksRemoved', 0, 'apiKeysDeactivated', 0);
    v_grace double precision := greatest(coalesce(p_grace_seconds, 0), 0);
BEGIN
    IF p_reason IS NULL OR p_reason NOT IN ('no deployment of this model_name is left in LiteLLM') THEN
        RAISE EXCEPTION USING
            MESSAGE = 'litemaas_hooks.retire_model_v2: unknown reason (audit rows only carry known reasons)',
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
        RETURN jsonb_build_object('found', true, 'retired', false, 'hand_made', true);
    END IF;
    IF litemaas_hooks.litellm_has_name_v1(p_model_id) THEN
        -- LiteLLM (same database) still has a deployment of this name: not to be retired
        RETURN jsonb_build_object('found', true, 'retired', false, 'litellm_has_it', true);
    END IF;
    IF p_instance IS NOT NULL THEN
        DELETE FROM litemaas_hooks.model_instances AS mi
        WHERE mi.model_id = p_model_id AND mi.instance = p_instance;
        v_others := ARRAY(SELECT mi.instance FROM litemaas_hooks.model_instances AS mi
                          WHERE mi.model_id = p_model_id ORDER BY mi.instance);
        IF cardinality(v_others) > 0 THEN
            -- another LiteLLM still serves this name: not ours to retire
            RETURN jsonb_build_object('found', true, 'retired', false, 'served_elsewhere', true,
                                      'instances', cardinality(v_others));
        END IF;
    END IF;
    IF v_availability = 'unavailable' AND NOT EXISTS (
        SELECT 1 FROM litemaas_hooks.hidden_models AS h WHERE h.model_id = p_model_id
    ) THEN
        RETURN jsonb_build_object('found', true, 'retired', false, 'admin_hidden', true);
    END IF;
    IF EXISTS (SELECT 1 FROM litemaas_hooks.hidden_models AS h
               WHERE h.model_id = p_model_id AND h.reason = 'retired') THEN
        IF p_hold THEN
            UPDATE litemaas_hooks.pending_retires AS p
            SET held_at = coalesce(p.held_at, now()), held_why = coalesce(p.held_why, 'mass retire')
            WHERE p.model_id = p_model_id;
        END IF;
        RETURN jsonb_build_object('found', true, 'retired', false, 'already_retired', true);
    END IF;

    UPDATE public.models SET availability = 'unavailable'
    WHERE id = p_model_id AND availability IS DISTINCT FROM 'unavailable';
    INSERT INTO litemaas_hooks.hidden_models (model_id, reason) VALUES (p_model_id, 'retired')
    ON CONFLICT (model_id) DO UPDATE SET reason = 'retired', hidden_at = now();

    IF p_cascade AND (v_grace > 0 OR p_hold) THEN
        INSERT INTO litemaas_hooks.pending_retires AS p (model_id, instance, due_at, held_at, held_why)
        VALUES (p_model_id, p_instance, now() + make_interval(secs => v_grace),
                CASE WHEN p_hold THEN now() END, CASE WHEN p_hold THEN 'mass retire' END)
        ON CONFLICT (model_id) DO UPDATE SET
            instance = EXCLUDED.instance, marked_at = now(), due_at = EXCLUDED.due_at,
            held_at = EXCLUDED.held_at, held_why = EXCLUDED.held_why;
        RETURN jsonb_build_object('found', true, 'retired', true, 'pending', true, 'held', p_hold,
                                  'grace_seconds', v_grace);
    END IF;
    IF p_cascade THEN
        v_counts := litemaas_hooks.cascade_model_v1(p_model_id);
    END IF;
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
