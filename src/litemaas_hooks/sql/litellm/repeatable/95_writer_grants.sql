-- Repeatable (run on every `litemaas-hooks install`): what the writers of LiteLLM's model table
-- need so that the SECURITY INVOKER trigger (10_record_model_event.sql) can record their changes,
-- and nothing more: USAGE on the schema, INSERT on the four columns an event is made of (never
-- status, attempts, claims or errors; never SELECT/UPDATE/DELETE), USAGE on the id sequence.
-- Granted to the owner of public."LiteLLM_ProxyModelTable" (LiteLLM's own role: Prisma creates the
-- table as that role). Another role that writes the table gets the same with `litemaas-hooks
-- install --print-grants --litellm-role NAME`. Nothing of ours is executable by PUBLIC; the table's
-- owner may EXECUTE the trigger function (below). The owner also gets the relay's grants on our
-- tables, so that plugin mode (the relay inside LiteLLM, with LiteLLM's own role) can claim the
-- outbox after an install by another role.
DO $install$
DECLARE
    tbl   regclass := pg_catalog.to_regclass('public."LiteLLM_ProxyModelTable"');
    owner regrole;
    fn    regprocedure;
BEGIN
    FOR fn IN
        SELECT p.oid::regprocedure FROM pg_catalog.pg_proc AS p
        WHERE p.pronamespace = 'litemaas_hooks'::regnamespace
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn);
    END LOOP;

    IF tbl IS NULL THEN
        RETURN;  -- 90_trigger.sql already said what is missing
    END IF;
    SELECT c.relowner::regrole INTO owner FROM pg_catalog.pg_class AS c WHERE c.oid = tbl;
    IF pg_catalog.pg_get_userbyid(owner::oid) = CURRENT_USER THEN
        RETURN;  -- the installer owns LiteLLM's table: it owns the outbox too
    END IF;
    EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA litemaas_hooks TO %s', owner);
    EXECUTE pg_catalog.format(
        'GRANT INSERT (op, model_id, old_model_name, new_model_name) ON litemaas_hooks.model_events TO %s', owner);
    EXECUTE pg_catalog.format('GRANT USAGE ON SEQUENCE litemaas_hooks.model_events_id_seq TO %s', owner);
    -- so that the owner (the relay in plugin mode) can put the trigger back after LiteLLM re-created its
    -- table; a trigger function cannot be called directly, so this grants nothing else
    EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION litemaas_hooks.record_model_event_v1() TO %s', owner);
    -- plugin mode: the relay inside LiteLLM works the outbox with LiteLLM's own role, whoever
    -- installed (a DBA, a superuser): the relay grants of `install --print-grants` on our tables.
    -- It gains no power over the sync it did not have: as the table's owner it may disable the
    -- trigger anyway, and the shared memo is signed with a key it cannot forge (memo_share).
    EXECUTE pg_catalog.format(
        'GRANT SELECT, INSERT, UPDATE, DELETE ON litemaas_hooks.model_events TO %s', owner);
    EXECUTE pg_catalog.format(
        'GRANT SELECT, UPDATE ON litemaas_hooks.reconcile_state TO %s', owner);
    EXECUTE pg_catalog.format(
        'GRANT SELECT, INSERT, UPDATE, DELETE ON litemaas_hooks.cost_map_memo TO %s', owner);
    EXECUTE pg_catalog.format(
        'GRANT EXECUTE ON FUNCTION litemaas_hooks.claim_batch_v1(text, integer, double precision, '
        'bigint[], integer, integer) TO %s', owner);
END
$install$;
