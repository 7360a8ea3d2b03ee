-- Repeatable (run on every `litemaas-hooks install`): the current definition of litemaas_hooks.model_ids_v1.
-- Released migrations keep their original text; functions are code and live here, one per file.

-- Every model id in the backend (a full reconcile with --retire-missing walks them in chunks).
CREATE OR REPLACE FUNCTION litemaas_hooks.model_ids_v1()
RETURNS SETOF text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT m.id::text FROM public.models AS m
$$;
