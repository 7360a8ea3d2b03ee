-- Which kind of database is this? Read by the CLI before it touches anything, so a URL pointing at the
-- wrong database (the two swapped, a fresh empty one) gets a sentence instead of a PostgreSQL error.
-- Never fails, before install too: every part is looked up, nothing is assumed.

-- name: database_kind
SELECT
    current_database() AS database,
    to_regclass('public."LiteLLM_ProxyModelTable"') IS NOT NULL AS has_litellm_table,
    to_regclass('public.models') IS NOT NULL AS has_backend_models,
    to_regclass('litemaas_hooks.model_events') IS NOT NULL AS has_outbox,
    to_regprocedure('litemaas_hooks.upsert_models_v1(jsonb)') IS NOT NULL AS has_backend_functions,
    -- a server that cannot take our writes (status says so): a hot standby / read replica, or a
    -- read-only session (default_transaction_read_only, an RDS/Aurora reader endpoint)
    pg_catalog.pg_is_in_recovery() AS in_recovery,
    pg_catalog.current_setting('transaction_read_only')::boolean AS read_only
