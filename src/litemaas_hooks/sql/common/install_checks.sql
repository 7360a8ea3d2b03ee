-- Read-only look-ups behind `install --wait-for-litellm` (wait_tables.py) and the checks install
-- runs after migrating (install_checks.py). Catalog names are schema-qualified (pg_catalog,
-- information_schema), so they read the same whatever the session's search_path.

-- name: table_exists
-- table: a schema-qualified table name, e.g. public.models
SELECT to_regclass(%(table)s) IS NOT NULL

-- name: owned_relations_present
-- Which of the tables and indexes named in names (text[]) exist in schema litemaas_hooks.
SELECT c.relname
FROM pg_catalog.pg_class AS c
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = 'litemaas_hooks' AND c.relname = ANY(%(names)s::text[])

-- name: owned_functions_present
-- Which of the functions named in names (text[]) exist in schema litemaas_hooks.
SELECT p.proname
FROM pg_catalog.pg_proc AS p
JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
WHERE n.nspname = 'litemaas_hooks' AND p.proname = ANY(%(names)s::text[])

-- name: backend_models_columns
-- The columns of the LiteMaaS backend's public.models, with their types.
SELECT column_name, data_type, udt_name
FROM information_schema.columns
WHERE table_schema = 'public' AND table_name = 'models'
