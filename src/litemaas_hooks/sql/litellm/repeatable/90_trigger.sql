-- Run on every `litemaas-hooks install`, after the migrations: make sure the outbox trigger exists on
-- LiteLLM's model table, is enabled and calls the current trigger function. A no-op when it already
-- does (no lock is taken on LiteLLM's table then). LiteLLM's own schema updates may drop and re-create
-- its table, which drops the trigger with it: re-running install puts it back (`litemaas-hooks status`
-- tells when it is missing).
DO $install$
DECLARE
    tbl  regclass := to_regclass('public."LiteLLM_ProxyModelTable"');
    fn   regprocedure := to_regprocedure('litemaas_hooks.record_model_event_v1()');
    trg  record;
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION USING
            MESSAGE = 'table public."LiteLLM_ProxyModelTable" does not exist in this database, so the '
                'litemaas-hooks trigger cannot be installed. Check that LITELLM_DATABASE_URL (or DATABASE_URL) '
                'points at LiteLLM''s database, start LiteLLM once with STORE_MODEL_IN_DB=True so it creates '
                'its tables, then run `litemaas-hooks install` again',
            ERRCODE = 'undefined_table';
    END IF;

    SELECT t.tgfoid, t.tgenabled, t.tgtype INTO trg
    FROM pg_catalog.pg_trigger AS t
    WHERE t.tgrelid = tbl AND t.tgname = 'litemaas_hooks_model_events' AND NOT t.tgisinternal;

    -- tgtype 29 = ROW (1) | INSERT (4) | DELETE (8) | UPDATE (16), AFTER; 'O' = enabled (origin/local)
    IF FOUND AND trg.tgfoid = fn AND trg.tgenabled = 'O' AND trg.tgtype = 29 THEN
        RETURN;
    END IF;

    IF FOUND THEN
        DROP TRIGGER litemaas_hooks_model_events ON public."LiteLLM_ProxyModelTable";
    END IF;
    CREATE TRIGGER litemaas_hooks_model_events
        AFTER INSERT OR UPDATE OR DELETE ON public."LiteLLM_ProxyModelTable"
        FOR EACH ROW EXECUTE FUNCTION litemaas_hooks.record_model_event_v1();
    RAISE NOTICE 'litemaas-hooks: outbox trigger installed on public."LiteLLM_ProxyModelTable"';
END
$install$;
