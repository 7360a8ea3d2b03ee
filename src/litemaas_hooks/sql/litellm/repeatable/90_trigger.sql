-- Run on every `litemaas-hooks install`, after the migrations: make sure the outbox trigger exists on
-- LiteLLM's model table, is enabled and calls the current trigger function. A no-op when it already
-- does (no lock is taken on LiteLLM's table then). LiteLLM's own schema updates may drop and re-create
-- its table, which drops the trigger with it: re-running install puts it back (`litemaas-hooks status`
-- tells when it is missing; the relay re-runs this script when it finds the trigger missing).
--
-- DROP/CREATE TRIGGER lock LiteLLM's table, and while such a lock request waits every LiteLLM statement
-- on the table queues behind it. So the lock is requested with a 50 ms lock_timeout: behind an open
-- LiteLLM transaction this step gives up with a WARNING (nothing changed, LiteLLM waited at most 50 ms)
-- and is retried by the relay or the next `litemaas-hooks install`.
DO $install$
DECLARE
    tbl  regclass := pg_catalog.to_regclass('public."LiteLLM_ProxyModelTable"');
    fn   regprocedure := pg_catalog.to_regprocedure('litemaas_hooks.record_model_event_v1()');
    trg  record;
    present boolean;
    prev_lock_timeout text := pg_catalog.current_setting('lock_timeout');
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
    present := FOUND;
    IF present AND trg.tgfoid = fn AND trg.tgenabled = 'O' AND trg.tgtype = 29 THEN
        RETURN;
    END IF;

    PERFORM pg_catalog.set_config('lock_timeout', '50ms', true);
    BEGIN
        IF present THEN
            DROP TRIGGER litemaas_hooks_model_events ON public."LiteLLM_ProxyModelTable";
        END IF;
        CREATE TRIGGER litemaas_hooks_model_events
            AFTER INSERT OR UPDATE OR DELETE ON public."LiteLLM_ProxyModelTable"
            FOR EACH ROW EXECUTE FUNCTION litemaas_hooks.record_model_event_v1();
    EXCEPTION WHEN lock_not_available THEN
        PERFORM pg_catalog.set_config('lock_timeout', prev_lock_timeout, true);
        RAISE WARNING USING
            MESSAGE = 'litemaas-hooks: the outbox trigger on public."LiteLLM_ProxyModelTable" was not (re-)installed: '
                'the table is locked by another transaction (an open LiteLLM transaction, a migration); '
                'gave up after 50 ms so that LiteLLM does not wait',
            HINT = 'the relay retries on its next check; or run `litemaas-hooks install` again. Until then the '
                'periodic full reconcile carries the changes';
        RETURN;
    END;
    PERFORM pg_catalog.set_config('lock_timeout', prev_lock_timeout, true);
    RAISE NOTICE 'litemaas-hooks: outbox trigger installed on public."LiteLLM_ProxyModelTable"';
END
$install$;
