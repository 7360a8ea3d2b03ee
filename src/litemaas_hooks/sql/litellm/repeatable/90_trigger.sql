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
    good integer;
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

    -- three AFTER ... FOR EACH STATEMENT triggers with transition tables (one event each:
    -- PostgreSQL allows transition tables only then), enabled ('O'), calling the current function.
    -- tgtype: INSERT 4, DELETE 8, UPDATE 16, no ROW bit (the row-level trigger of earlier releases,
    -- tgtype 29, is replaced).
    SELECT count(*) INTO good
    FROM pg_catalog.pg_trigger AS t
    WHERE t.tgrelid = tbl AND NOT t.tgisinternal AND t.tgfoid = fn AND t.tgenabled = 'O'
      AND (t.tgname, t.tgtype) IN (('litemaas_hooks_model_events', 16::int2),
                                   ('litemaas_hooks_model_events_insert', 4::int2),
                                   ('litemaas_hooks_model_events_delete', 8::int2));
    IF good = 3 THEN
        RETURN;
    END IF;

    PERFORM pg_catalog.set_config('lock_timeout', '50ms', true);
    BEGIN
        DROP TRIGGER IF EXISTS litemaas_hooks_model_events ON public."LiteLLM_ProxyModelTable";
        DROP TRIGGER IF EXISTS litemaas_hooks_model_events_insert
            ON public."LiteLLM_ProxyModelTable";
        DROP TRIGGER IF EXISTS litemaas_hooks_model_events_delete
            ON public."LiteLLM_ProxyModelTable";
        CREATE TRIGGER litemaas_hooks_model_events
            AFTER UPDATE ON public."LiteLLM_ProxyModelTable"
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION litemaas_hooks.record_model_event_v1();
        CREATE TRIGGER litemaas_hooks_model_events_insert
            AFTER INSERT ON public."LiteLLM_ProxyModelTable"
            REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION litemaas_hooks.record_model_event_v1();
        CREATE TRIGGER litemaas_hooks_model_events_delete
            AFTER DELETE ON public."LiteLLM_ProxyModelTable"
            REFERENCING OLD TABLE AS old_rows
            FOR EACH STATEMENT EXECUTE FUNCTION litemaas_hooks.record_model_event_v1();
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
