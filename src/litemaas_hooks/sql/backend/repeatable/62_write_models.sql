-- Repeatable (run on every `litemaas-hooks install`): the current definition of litemaas_hooks.write_models_v1.
-- Released migrations keep their original text; functions are code and live here, one per file.

-- The relay's write of an add or update, as one call: what the named query write_models_one_trip
-- does, in the same order. This transaction's lock timeout (p_lock_timeout; NULL resets it to the
-- session's default, as set_config does), then the names' locks (try_lock_models_v1, never waiting
-- on one name), then for the names not busy the upsert (upsert_models_v1: the records of busy
-- names are left out, taken apart only when a name is busy) and their sources and instances
-- (note_model_sources_v1, note_model_instances_v1 when p_instance is not NULL). Returns the busy
-- names and the upsert's model ids and outcomes (two arrays, in the same order, NULL when none).
--
-- Why the inner calls are not checked (check_function_v1): this function is owned by the owner of
-- public.models, like the four it calls (90_privileges.sql), and as SECURITY DEFINER it runs them
-- as that owner. An owner that altered one of them would run its own code with its own privileges:
-- it gains nothing. What could run code with a more privileged caller's rights is this function
-- itself, and every call of it checks it first (the named query write_models).
-- The four functions stay as they are: relays of the previous release call them directly.
CREATE OR REPLACE FUNCTION litemaas_hooks.write_models_v1(
    p_ids text[], p_models jsonb, p_source_ids text[], p_from_db boolean[], p_instance text,
    p_lock_timeout text,
    OUT busy text[], OUT ids text[], OUT outcomes text[])
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_models jsonb := p_models;
    v_ids text[] := p_source_ids;
    v_from_db boolean[] := p_from_db;
BEGIN
    -- LOCAL: the rest of this transaction (a function's SET clause restores only search_path)
    PERFORM pg_catalog.set_config('lock_timeout', p_lock_timeout, true);
    busy := coalesce(litemaas_hooks.try_lock_models_v1(p_ids, false), '{}');
    IF busy <> '{}' THEN  -- the records and the sources of the busy names left out
        SELECT coalesce(pg_catalog.jsonb_agg(r.value ORDER BY r.ordinality), '[]'::jsonb)
          INTO v_models
          FROM pg_catalog.jsonb_array_elements(p_models) WITH ORDINALITY AS r (value, ordinality)
         WHERE (r.value ->> 'id') <> ALL (busy);
        SELECT pg_catalog.array_agg(i.id ORDER BY i.id),
               pg_catalog.array_agg(i.from_db ORDER BY i.id)
          INTO v_ids, v_from_db
          FROM ROWS FROM (pg_catalog.unnest(p_source_ids), pg_catalog.unnest(p_from_db))
               AS i (id, from_db)
         WHERE i.id <> ALL (busy);
    END IF;
    SELECT pg_catalog.array_agg(w.model_id ORDER BY w.model_id),
           pg_catalog.array_agg(w.outcome ORDER BY w.model_id)
      INTO ids, outcomes
      FROM litemaas_hooks.upsert_models_v1(v_models) AS w;
    PERFORM litemaas_hooks.note_model_sources_v1(v_ids, v_from_db);
    IF p_instance IS NOT NULL THEN
        PERFORM litemaas_hooks.note_model_instances_v1(v_ids, p_instance);
    END IF;
END;
$$;
