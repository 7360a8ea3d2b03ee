-- Repeatable (run on every `litemaas-hooks install`): litemaas_hooks.litellm_has_name_v1, before
-- the retire functions that call it.

-- Does LiteLLM still have a deployment named p_name? Answerable only when LiteLLM's table is in
-- this database (one shared database, RHDP); NULL otherwise (two databases: the backend cannot see
-- LiteLLM). The retire functions refuse a name LiteLLM still has, so that the relay role cannot
-- retire a live model (docs/relay-role.md). Read only when it runs no other role's code as us:
-- a plain table (no row-level security policy of its owner's, unless we own it), model_name of the
-- built-in type text, compared with pg_catalog's operator; and when we may read it (else NULL).
-- Called only by our SECURITY DEFINER functions (EXECUTE revoked from PUBLIC, 90_privileges.sql).
CREATE OR REPLACE FUNCTION litemaas_hooks.litellm_has_name_v1(p_name text)
RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_tbl regclass := pg_catalog.to_regclass('public."LiteLLM_ProxyModelTable"');
    v_ok boolean;
BEGIN
    IF v_tbl IS NULL OR p_name IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT c.relkind IN ('r', 'p')
           AND (NOT c.relrowsecurity OR c.relowner = (SELECT r.oid FROM pg_catalog.pg_roles AS r
                                                       WHERE r.rolname = CURRENT_USER))
           AND a.atttypid = 'pg_catalog.text'::pg_catalog.regtype
           AND pg_catalog.has_table_privilege(v_tbl, 'SELECT')
      INTO v_ok
    FROM pg_catalog.pg_class AS c
    JOIN pg_catalog.pg_attribute AS a
      ON a.attrelid = c.oid AND a.attname = 'model_name' AND NOT a.attisdropped
    WHERE c.oid = v_tbl;
    IF NOT coalesce(v_ok, false) THEN
        RETURN NULL;
    END IF;
    RETURN EXISTS (SELECT 1 FROM public."LiteLLM_ProxyModelTable" AS t
                   WHERE t.model_name OPERATOR(pg_catalog.=) p_name);
END;
$$;
