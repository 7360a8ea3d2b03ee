-- Repeatable (run on every `litemaas-hooks install`): the current definition of litemaas_hooks.note_model_sources_v1.
-- Released migrations keep their original text; functions are code and live here, one per file.

-- Record where the given synced models come from (see migration 0004). Writes only what changed.
-- PL/pgSQL: its plan is kept for the session (a SQL function like this one is planned per call).
CREATE OR REPLACE FUNCTION litemaas_hooks.note_model_sources_v1(p_ids text[], p_from_db boolean[])
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO litemaas_hooks.model_sources AS s (model_id, from_db)
    SELECT i.id, bool_or(i.from_db)
    FROM unnest(p_ids, p_from_db) AS i (id, from_db)
    WHERE i.id IS NOT NULL AND i.from_db IS NOT NULL
    GROUP BY i.id
    ON CONFLICT (model_id) DO UPDATE SET from_db = EXCLUDED.from_db, noted_at = now()
    WHERE s.from_db IS DISTINCT FROM EXCLUDED.from_db;
END;
$$;
