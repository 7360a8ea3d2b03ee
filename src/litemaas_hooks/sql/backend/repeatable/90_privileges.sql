-- Repeatable (run on every `litemaas-hooks install`, after every function): who our backend functions
-- run as, and who may call them (docs/privileges.md).
--
-- The SECURITY DEFINER functions write public.models (whose triggers run the backend's own
-- update_updated_at_column()), subscriptions, api_keys, api_key_models and audit_logs. Whoever owns
-- public.models controls that code; so the functions are owned by that same role, never by the
-- installer (which may be a superuser): code the data owner controls then only ever runs with the
-- data owner's own privileges. That role gets DML on our hidden_models table (its functions need
-- it), never ownership of our tables (an owner could put triggers on them that would run as the
-- installer) and never our bookkeeping (schema_migrations, function_checks: what every call checks
-- the functions against, so an owner that alters them is refused, 92_function_checks.sql). EXECUTE
-- is revoked from PUBLIC; the relay's role gets EXECUTE on the functions it calls from
-- `litemaas-hooks install --print-grants`.
--
-- A non-superuser installer must be a member of the data owner's role (GRANT <owner> TO <installer>):
-- ALTER FUNCTION ... OWNER TO needs that, and CREATE on the schema for the new owner, which is granted
-- for the change (when it lacks it) and revoked right after.
DO $install$
DECLARE
    tbl       regclass := pg_catalog.to_regclass('public.models');
    owner     regrole;
    owner_su  boolean;
    fn        record;
    rel       record;
    granted   boolean := false;
BEGIN
    FOR fn IN
        SELECT p.oid::regprocedure AS sig FROM pg_catalog.pg_proc AS p
        WHERE p.pronamespace = 'litemaas_hooks'::regnamespace
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn.sig);
    END LOOP;

    IF tbl IS NULL THEN
        RAISE EXCEPTION USING
            MESSAGE = 'table public.models does not exist in this database: LITEMAAS_DATABASE_URL must point at '
                'the LiteMaaS backend database (start the backend once so that it creates its tables)',
            ERRCODE = 'undefined_table';
    END IF;
    SELECT c.relowner::regrole, r.rolsuper INTO owner, owner_su
    FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_roles AS r ON r.oid = c.relowner
    WHERE c.oid = tbl;
    IF owner_su THEN
        RAISE WARNING USING
            MESSAGE = pg_catalog.format('litemaas-hooks: public.models is owned by the superuser %s, so the '
                'litemaas-hooks functions that write it run as a superuser too', owner),
            HINT = 'let a non-superuser role own the backend tables (ALTER TABLE ... OWNER TO), as the LiteMaaS '
                'deployment does, then run `litemaas-hooks install` again';
    END IF;

    EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA litemaas_hooks TO %s', owner);
    -- our tables that the functions read and write (hidden_models & co), never schema_migrations
    FOR rel IN
        SELECT c.oid::regclass AS name, c.relkind FROM pg_catalog.pg_class AS c
        WHERE c.relnamespace = 'litemaas_hooks'::regnamespace AND c.relkind IN ('r', 'p', 'S')
          AND c.relname NOT IN ('schema_migrations', 'function_checks')
    LOOP
        IF rel.relkind = 'S' THEN
            EXECUTE pg_catalog.format('GRANT USAGE ON SEQUENCE %s TO %s', rel.name, owner);
        ELSE
            EXECUTE pg_catalog.format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO %s', rel.name, owner);
        END IF;
    END LOOP;

    FOR fn IN
        SELECT p.oid::regprocedure AS sig FROM pg_catalog.pg_proc AS p
        WHERE p.pronamespace = 'litemaas_hooks'::regnamespace AND p.prosecdef AND p.proowner <> owner::oid
    LOOP
        IF NOT granted AND NOT pg_catalog.has_schema_privilege(owner, 'litemaas_hooks', 'CREATE') THEN
            EXECUTE pg_catalog.format('GRANT CREATE ON SCHEMA litemaas_hooks TO %s', owner);
            granted := true;
        END IF;
        BEGIN
            EXECUTE pg_catalog.format('ALTER FUNCTION %s OWNER TO %s', fn.sig, owner);
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE EXCEPTION USING
                MESSAGE = pg_catalog.format('cannot make %s (the owner of public.models) the owner of %s: %s',
                                            owner, fn.sig, SQLERRM),
                HINT = pg_catalog.format('run `litemaas-hooks install` as %s, as a superuser, or as a role '
                                         'that is a member of it (GRANT %s TO <installer>)', owner, owner),
                ERRCODE = 'insufficient_privilege';
        END;
    END LOOP;
    IF granted THEN
        EXECUTE pg_catalog.format('REVOKE CREATE ON SCHEMA litemaas_hooks FROM %s', owner);
    END IF;
END
$install$;
