-- Repeatable (run on every `litemaas-hooks install`): the current definition of litemaas_hooks.lock_models_v1.
-- Released migrations keep their original text; functions are code and live here, one per file.

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
