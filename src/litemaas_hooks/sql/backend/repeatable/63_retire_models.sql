-- Repeatable (run on every `litemaas-hooks install`): the current definition of litemaas_hooks.retire_models_v1.
-- Released migrations keep their original text; functions are code and live here, one per file.

-- The relay's write of a delete (names with no deployment left in LiteLLM), as one call: what its
-- two round trips do (the names' locks and rows, then retire_model_v2 for each name to retire), in
-- the same order. This transaction's lock timeout (p_lock_timeout; NULL resets it to the session's
-- default, as set_config does), then the names' locks (try_lock_models_v1, never waiting on one
-- name), then for each name not busy, in name order, the relay's plan for a name LiteLLM no longer
-- has (planning.plan_absent, the same rules in the same order):
--   no backend row                      -> {"skipped": "absent"}
--   retired by a sync already           -> {"skipped": "already_retired"}
--   hand-made (no sync wrote it)        -> {"skipped": "hand_made"}
--   unavailable already (an admin's, the backend's sync's, or hidden while blocked: like the
--   backend's own markModelUnavailable, no second cascade, no second audit row)
--                                       -> {"skipped": "already_unavailable"}
--   else retire_model_v2(...) and its answer, with "availability_before".
-- Returns the busy names and one result per name not busy (a jsonb object keyed by name).
-- The rows are read as the relay's other path reads them (models_snapshot_v1: a hand-made row is
-- its id only), and each rule is plan_absent's on that row (CurrentRow.retired, .from_litellm,
-- .availability). They were locked by try_lock_models_v1 (FOR NO KEY UPDATE), so what is read
-- here is what retire_model_v2 finds under its own lock. p_hold: the mass-retire guard's
-- decision, made by the caller (the relay calls this only when the batch is too small for the
-- guard to hold it).
--
-- Why the inner calls are not checked (check_function_v1): as for write_models_v1, this function
-- is owned by the owner of public.models, like the three it calls (90_privileges.sql), and as
-- SECURITY DEFINER it runs them as that owner, who gains nothing by altering them. Every call of
-- this function checks it first (the named query retire_models).
CREATE OR REPLACE FUNCTION litemaas_hooks.retire_models_v1(
    p_ids text[], p_cascade boolean, p_reason text, p_grace_seconds double precision,
    p_instance text, p_hold boolean, p_lock_timeout text,
    OUT busy text[], OUT results jsonb)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    v_result jsonb;
BEGIN
    -- LOCAL: the rest of this transaction (a function's SET clause restores only search_path)
    PERFORM pg_catalog.set_config('lock_timeout', p_lock_timeout, true);
    busy := coalesce(litemaas_hooks.try_lock_models_v1(p_ids, false), '{}');
    results := '{}'::jsonb;
    FOR r IN
        SELECT w.id, s.id IS NOT NULL AS present, s.availability, s.hidden_reason,
               s.litellm_model_id IS NOT NULL
                   OR coalesce(s.metadata ? 'litellm_model_info' OR s.metadata ? 'litellm_params',
                               false) AS from_litellm
          FROM (SELECT DISTINCT i.id FROM pg_catalog.unnest(p_ids) AS i (id)
                 WHERE i.id IS NOT NULL AND i.id <> ALL (busy)) AS w
          LEFT JOIN litemaas_hooks.models_snapshot_v1(p_ids) AS s ON s.id = w.id
         ORDER BY w.id
    LOOP
        IF NOT r.present THEN
            v_result := '{"skipped": "absent"}';
        ELSIF r.hidden_reason IS NOT DISTINCT FROM 'retired' THEN
            v_result := '{"skipped": "already_retired"}';
        ELSIF NOT r.from_litellm THEN
            v_result := '{"skipped": "hand_made"}';
        ELSIF r.availability IS NOT DISTINCT FROM 'unavailable' THEN
            v_result := '{"skipped": "already_unavailable"}';
        ELSE
            v_result := litemaas_hooks.retire_model_v2(
                            r.id, p_cascade, p_reason, p_grace_seconds, p_instance, p_hold)
                        || pg_catalog.jsonb_build_object('availability_before', r.availability);
        END IF;
        results := results || pg_catalog.jsonb_build_object(r.id, v_result);
    END LOOP;
END;
$$;
