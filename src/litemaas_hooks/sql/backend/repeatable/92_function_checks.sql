-- Repeatable (run on every `litemaas-hooks install`, after 90_privileges.sql): what each of
-- our functions looked like right after install, and the check every call makes against it.
--
-- Our SECURITY DEFINER functions are owned by the owner of public.models (90_privileges.sql),
-- and an owner may ALTER its functions (SECURITY INVOKER, another search_path, another body).
-- The next call by a more privileged session (the installer's backfill, maybe a superuser)
-- would then run the owner's code with that session's privileges. So every call in
-- sql/backend/queries.sql first runs litemaas_hooks.check_function_v1(<the function>) in the
-- same statement (the call's argument depends on its result, so it runs first). It compares
-- owner, SECURITY DEFINER, settings and a language+body checksum with what install recorded
-- here, and refuses with one line when any differs.
--
-- The record table and the check function are owned by the installer, never by a data owner:
-- the owner of public.models cannot change either (90_privileges.sql grants it nothing on
-- them). Everyone may read the record (checksums of public code); whoever may call one of our
-- functions may call the check.
CREATE TABLE IF NOT EXISTS litemaas_hooks.function_checks (
    fn        text    PRIMARY KEY,  -- the signature (regprocedure as text: survives dump/restore)
    owner     oid     NOT NULL,
    secdef    boolean NOT NULL,
    config    text[],
    body_md5  text    NOT NULL
);

CREATE OR REPLACE FUNCTION litemaas_hooks.check_function_v1(p_fn regprocedure)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    want litemaas_hooks.function_checks%ROWTYPE;
    have record;
BEGIN
    SELECT * INTO want FROM litemaas_hooks.function_checks AS c WHERE c.fn = p_fn::text;
    SELECT p.proowner AS owner, p.prosecdef AS secdef, p.proconfig AS config,
           md5(l.lanname || ':' || p.prosrc) AS body_md5
      INTO have
      FROM pg_catalog.pg_proc AS p JOIN pg_catalog.pg_language AS l ON l.oid = p.prolang
     WHERE p.oid = p_fn;
    IF want.fn IS NULL OR have.owner IS DISTINCT FROM want.owner
       OR have.secdef IS DISTINCT FROM want.secdef OR have.config IS DISTINCT FROM want.config
       OR have.body_md5 IS DISTINCT FROM want.body_md5 THEN
        RAISE EXCEPTION USING
            MESSAGE = format('litemaas-hooks refuses to call %s: its definition is not what '
                '`litemaas-hooks install` left (%s), so calling it could run code of the role that '
                'changed it (owner now %s) with this session''s privileges; find out who altered '
                'it, then run `litemaas-hooks install` again', p_fn,
                concat_ws(', ',
                    CASE WHEN want.fn IS NULL THEN 'no record of it' END,
                    CASE WHEN have.owner IS DISTINCT FROM want.owner THEN 'owner changed' END,
                    CASE WHEN have.secdef IS DISTINCT FROM want.secdef THEN
                        CASE WHEN have.secdef THEN 'now SECURITY DEFINER'
                             ELSE 'now SECURITY INVOKER' END END,
                    CASE WHEN have.config IS DISTINCT FROM want.config THEN
                        'settings now ' || coalesce(array_to_string(have.config, '; '), 'none') END,
                    CASE WHEN have.body_md5 IS DISTINCT FROM want.body_md5 THEN 'body changed' END),
                coalesce(pg_get_userbyid(have.owner), '-')),
            ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN true;
END;
$$;

DO $install$
DECLARE
    grantee regrole;
    owner regrole := (SELECT c.relowner::regrole FROM pg_catalog.pg_class AS c
                      WHERE c.oid = pg_catalog.to_regclass('public.models'));
BEGIN
    -- the data owner must never write the record (it has DML on our other tables)
    REVOKE ALL ON litemaas_hooks.function_checks FROM PUBLIC;
    IF owner IS NOT NULL AND pg_catalog.pg_get_userbyid(owner::oid) <> CURRENT_USER THEN
        EXECUTE pg_catalog.format('REVOKE ALL ON litemaas_hooks.function_checks FROM %s', owner);
    END IF;
    GRANT SELECT ON litemaas_hooks.function_checks TO PUBLIC;
    REVOKE ALL ON FUNCTION litemaas_hooks.check_function_v1(regprocedure) FROM PUBLIC;
    -- whoever may call one of our functions may call the check its calls make
    -- (the relay's role from `install --print-grants`, granted before this release too)
    FOR grantee IN
        SELECT DISTINCT a.grantee::regrole
          FROM pg_catalog.pg_proc AS p, pg_catalog.aclexplode(p.proacl) AS a
         WHERE p.pronamespace = 'litemaas_hooks'::regnamespace AND a.privilege_type = 'EXECUTE'
           AND a.grantee <> 0 AND a.grantee <> p.proowner
    LOOP
        EXECUTE pg_catalog.format(
            'GRANT EXECUTE ON FUNCTION litemaas_hooks.check_function_v1(regprocedure) TO %s',
            grantee);
    END LOOP;
    DELETE FROM litemaas_hooks.function_checks;
    INSERT INTO litemaas_hooks.function_checks (fn, owner, secdef, config, body_md5)
    SELECT p.oid::regprocedure::text, p.proowner, p.prosecdef, p.proconfig,
           md5(l.lanname || ':' || p.prosrc)
      FROM pg_catalog.pg_proc AS p JOIN pg_catalog.pg_language AS l ON l.oid = p.prolang
     WHERE p.pronamespace = 'litemaas_hooks'::regnamespace
       AND p.oid <> 'litemaas_hooks.check_function_v1(regprocedure)'::regprocedure;
END
$install$;
