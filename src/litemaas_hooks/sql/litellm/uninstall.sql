-- `litemaas-hooks uninstall`, LiteLLM database: the trigger on LiteLLM's table first (then schema
-- litemaas_hooks goes: common/uninstall.sql). LiteLLM's own tables and rows are untouched.

-- name: uninstall_outbox_present
SELECT to_regclass('litemaas_hooks.model_events') IS NOT NULL

-- name: uninstall_pending_events
SELECT count(*)::integer FROM litemaas_hooks.model_events WHERE status <> 'dead'

-- name: uninstall_drop_trigger
DO $uninstall$
BEGIN
    IF to_regclass('public."LiteLLM_ProxyModelTable"') IS NOT NULL THEN
        DROP TRIGGER IF EXISTS litemaas_hooks_model_events ON public."LiteLLM_ProxyModelTable";
        DROP TRIGGER IF EXISTS litemaas_hooks_model_events_insert
            ON public."LiteLLM_ProxyModelTable";
        DROP TRIGGER IF EXISTS litemaas_hooks_model_events_delete
            ON public."LiteLLM_ProxyModelTable";
    END IF;
END
$uninstall$
