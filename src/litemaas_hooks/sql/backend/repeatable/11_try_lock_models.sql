-- Repeatable (run on every `litemaas-hooks install`): the current definition of litemaas_hooks.try_lock_models_v1.
-- Released migrations keep their original text; functions are code and live here, one per file.

-- Like lock_models_v1, without ever waiting on one name: returns the names that are busy now, which
-- the caller leaves for later (no attempt is spent, no other name waits for them).
--   * the global lock: shared for a set of names (a full reconcile holds it exclusively; waiting for
--     it is bounded by the caller's lock_timeout), exclusive for p_ids NULL;
--   * per name, the advisory lock another relay holds while it converges that name: try-lock;
--   * per name, the backend row itself (an admin's SELECT ... FOR UPDATE, a long UPDATE): locked
--     here with SKIP LOCKED, so our upsert / retire of that row cannot wait for it either.
-- p_rows_only: only the row locks (a full reconcile's chunks: it already holds the global lock).
CREATE OR REPLACE FUNCTION litemaas_hooks.try_lock_models_v1(p_ids text[], p_rows_only boolean DEFAULT false)
RETURNS text[]
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_busy text[] := '{}';
    v_free text[];
    v_locked text[];
    r record;
BEGIN
    IF p_ids IS NULL THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('litemaas_hooks.models', 0));
        RETURN v_busy;
    END IF;
    IF NOT p_rows_only THEN
        PERFORM pg_advisory_xact_lock_shared(hashtextextended('litemaas_hooks.models', 0));
        FOR r IN SELECT DISTINCT id FROM unnest(p_ids) AS id WHERE id IS NOT NULL LOOP
            IF NOT pg_try_advisory_xact_lock(hashtextextended('litemaas_hooks.model:' || r.id, 0)) THEN
                v_busy := v_busy || r.id;
            END IF;
        END LOOP;
    END IF;
    v_free := ARRAY(SELECT DISTINCT id FROM unnest(p_ids) AS id WHERE id IS NOT NULL AND id <> ALL (v_busy));
    -- ORDER BY inside the locking query (not around it): rows are locked in id order.
    -- FOR NO KEY UPDATE, not FOR UPDATE: a subscription's foreign-key check (FOR KEY SHARE) on a row we
    -- hold never waits for us; an admin's FOR UPDATE or a writer still does (and we skip its rows).
    v_locked := ARRAY(
        SELECT m.id::text FROM public.models AS m
        WHERE m.id = ANY (v_free)
        ORDER BY m.id
        FOR NO KEY UPDATE OF m SKIP LOCKED
    );
    v_busy := v_busy || ARRAY(
        SELECT m.id::text FROM public.models AS m
        WHERE m.id = ANY (v_free) AND m.id <> ALL (v_locked)
    );
    RETURN v_busy;
END;
$$;
