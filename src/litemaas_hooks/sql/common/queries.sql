-- Bookkeeping shared by both databases: which migrations were applied, with their checksums.

-- name: migrations_lock
SELECT pg_advisory_xact_lock(hashtext('litemaas_hooks.migrate'))

-- name: migrations_bootstrap
CREATE SCHEMA IF NOT EXISTS litemaas_hooks;
CREATE TABLE IF NOT EXISTS litemaas_hooks.schema_migrations (
    side       text        NOT NULL,
    version    integer     NOT NULL,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (side, version)
)

-- name: migrations_applied
SELECT version, name, checksum FROM litemaas_hooks.schema_migrations WHERE side = %(side)s ORDER BY version

-- name: migrations_record
INSERT INTO litemaas_hooks.schema_migrations (side, version, name, checksum)
VALUES (%(side)s, %(version)s, %(name)s, %(checksum)s)
