-- Repeatable (run on every `litemaas-hooks install`): the functions over litemaas_hooks.pending_retires.
-- Released migrations keep their original text; functions are code and live here.
-- SECURITY DEFINER, owned by the owner of public.models (90_privileges.sql).

-- Due cascades, claimed for this transaction (FOR UPDATE SKIP LOCKED: any relay of the fleet, each
-- name by one at a time); held rows never. The caller re-checks LiteLLM, then cascade_pending_v1.
CREATE OR REPLACE FUNCTION litemaas_hooks.claim_due_retires_v1(p_limit integer)
RETURNS SETOF text
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.model_id::text FROM litemaas_hooks.pending_retires AS p
    WHERE p.held_at IS NULL AND p.due_at <= now()
    ORDER BY p.due_at, p.model_id
    LIMIT greatest(coalesce(p_limit, 100), 1)
    FOR UPDATE SKIP LOCKED
$$;

-- The held names (the mass-retire guard), claimed like claim_due_retires_v1 (`retire --confirm`).
CREATE OR REPLACE FUNCTION litemaas_hooks.claim_held_retires_v1(p_ids text[])
RETURNS SETOF text
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.model_id::text FROM litemaas_hooks.pending_retires AS p
    WHERE p.held_at IS NOT NULL AND (p_ids IS NULL OR p.model_id = ANY (p_ids))
    ORDER BY p.model_id
    FOR UPDATE SKIP LOCKED
$$;

-- Cascade one pending name (its pending row claimed by the caller) after LiteLLM was re-checked and
-- still has no deployment of it: the cascade, its audit row, the pending row gone. Nothing happens
-- (the pending row just goes) when the name is no longer retired by us (it came back, or an admin
-- took it over) or when another LiteLLM instance serves it now. p_held: the name is one the
-- mass-retire guard holds (only cascade_held_v1, the operator's `retire --confirm`, passes true);
-- a pending row in the other state is left alone.
CREATE OR REPLACE FUNCTION litemaas_hooks.cascade_pending_impl_v1(p_model_id text, p_reason text, p_held boolean)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_counts jsonb;
    v_held boolean;
BEGIN
    IF p_reason IS NULL OR p_reason NOT IN ('no deployment of this model_name is left in LiteLLM') THEN
        RAISE EXCEPTION USING
            MESSAGE = 'litemaas_hooks.cascade_pending_impl_v1: unknown reason (audit rows only carry known reasons)',
            ERRCODE = 'invalid_parameter_value';
    END IF;
    -- a due row only (the grace period is the database's to keep, not the caller's), or a held one
    -- for the operator's confirm
    DELETE FROM litemaas_hooks.pending_retires AS p
    WHERE p.model_id = p_model_id AND (p.held_at IS NOT NULL) = p_held
      AND (p_held OR p.due_at <= now())
    RETURNING p.held_at IS NOT NULL INTO v_held;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('cascaded', false, 'pending', false);
    END IF;
    -- NO KEY: a subscription's foreign-key check (FOR KEY SHARE) never waits for this row lock
    PERFORM 1 FROM public.models AS m WHERE m.id = p_model_id AND m.availability = 'unavailable'
    FOR NO KEY UPDATE;
    IF NOT FOUND OR NOT EXISTS (SELECT 1 FROM litemaas_hooks.hidden_models AS h
                                WHERE h.model_id = p_model_id AND h.reason = 'retired') THEN
        RETURN jsonb_build_object('cascaded', false, 'pending', true, 'came_back', true);
    END IF;
    IF EXISTS (SELECT 1 FROM litemaas_hooks.model_instances AS mi WHERE mi.model_id = p_model_id) THEN
        RETURN jsonb_build_object('cascaded', false, 'pending', true, 'served_elsewhere', true);
    END IF;
    IF litemaas_hooks.litellm_has_name_v1(p_model_id) THEN
        RETURN jsonb_build_object('cascaded', false, 'pending', true, 'litellm_has_it', true);
    END IF;
    v_counts := litemaas_hooks.cascade_model_v1(p_model_id);
    INSERT INTO public.audit_logs (user_id, action, resource_type, resource_id, old_values, new_values,
                                   success, metadata)
    VALUES (NULL, 'MODEL_MARKED_UNAVAILABLE_WITH_CASCADE', 'MODEL', p_model_id,
            jsonb_build_object('availability', 'available'),
            jsonb_build_object('availability', 'unavailable'),
            true,
            v_counts || jsonb_build_object('source', 'litemaas-hooks', 'reason', p_reason,
                                           'cascade', true, 'afterGrace', true,
                                           'confirmedByOperator', v_held));
    RETURN jsonb_build_object('cascaded', true, 'pending', true) || v_counts;
END;
$$;

-- The relay's due cascades (never a held name: the relay role cannot confirm what the guard holds).
CREATE OR REPLACE FUNCTION litemaas_hooks.cascade_pending_v1(p_model_id text, p_reason text)
RETURNS jsonb
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT litemaas_hooks.cascade_pending_impl_v1(p_model_id, p_reason, false)
$$;

-- The operator's `retire --confirm` of a held name (not granted to the relay role).
CREATE OR REPLACE FUNCTION litemaas_hooks.cascade_held_v1(p_model_id text, p_reason text)
RETURNS jsonb
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT litemaas_hooks.cascade_pending_impl_v1(p_model_id, p_reason, true)
$$;

-- The mass-retire guard holds these pending names (no cascade until `retire --confirm`).
CREATE OR REPLACE FUNCTION litemaas_hooks.hold_retires_v1(p_ids text[], p_why text)
RETURNS integer
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH held AS (
        UPDATE litemaas_hooks.pending_retires AS p
        SET held_at = coalesce(p.held_at, now()), held_why = left(coalesce(p_why, 'mass retire'), 200)
        WHERE p.model_id = ANY (p_ids)
        RETURNING 1
    )
    SELECT count(*)::integer FROM held
$$;

-- The guard's denominator: LiteLLM-sourced models that are live or waiting for their cascade.
CREATE OR REPLACE FUNCTION litemaas_hooks.retire_guard_total_v1()
RETURNS integer
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT count(*)::integer FROM public.models AS m
    WHERE (m.litellm_model_id IS NOT NULL
           OR coalesce(m.metadata ? 'litellm_model_info' OR m.metadata ? 'litellm_params', false))
      AND (m.availability IS DISTINCT FROM 'unavailable'
           OR EXISTS (SELECT 1 FROM litemaas_hooks.pending_retires AS p WHERE p.model_id = m.id))
$$;

-- Every pending cascade (status, `retire`, the relay's next wake-up): seconds_left <= 0 = due.
CREATE OR REPLACE FUNCTION litemaas_hooks.retire_queue_v1()
RETURNS TABLE (model_id text, instance text, marked_at timestamptz, due_at timestamptz,
               held_at timestamptz, held_why text, seconds_left double precision)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.model_id::text, p.instance, p.marked_at, p.due_at, p.held_at, p.held_why,
           extract(epoch FROM p.due_at - now())::float8
    FROM litemaas_hooks.pending_retires AS p
    ORDER BY p.due_at, p.model_id
$$;

-- Seconds until the next cascade that is not held is due (NULL: none); the relay's wake-up.
CREATE OR REPLACE FUNCTION litemaas_hooks.next_retire_due_v1()
RETURNS double precision
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT extract(epoch FROM min(p.due_at) - clock_timestamp())::float8
    FROM litemaas_hooks.pending_retires AS p WHERE p.held_at IS NULL
$$;

-- Record which LiteLLM instance synced the given names (see migration 0005). Writes only new rows.
-- PL/pgSQL: its plan is kept for the session (a SQL function like this one is planned per call).
CREATE OR REPLACE FUNCTION litemaas_hooks.note_model_instances_v1(p_ids text[], p_instance text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO litemaas_hooks.model_instances (model_id, instance)
    SELECT DISTINCT i.id, p_instance FROM unnest(p_ids) AS i (id)
    JOIN public.models AS m ON m.id = i.id
    WHERE p_instance IS NOT NULL AND i.id IS NOT NULL
    ON CONFLICT DO NOTHING;
END;
$$;

-- Of the given names this instance no longer has: forget that this instance synced them, and return
-- those another LiteLLM instance still serves (not to be retired). p_instance NULL: only the latter.
CREATE OR REPLACE FUNCTION litemaas_hooks.served_elsewhere_v1(p_ids text[], p_instance text)
RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_instance IS NOT NULL THEN
        DELETE FROM litemaas_hooks.model_instances AS mi
        WHERE mi.model_id = ANY (p_ids) AND mi.instance = p_instance;
    END IF;
    RETURN QUERY
    SELECT DISTINCT mi.model_id::text FROM litemaas_hooks.model_instances AS mi
    WHERE mi.model_id = ANY (p_ids) AND mi.instance IS DISTINCT FROM p_instance;
END;
$$;
