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

-- name: migrations_guard
-- Schema squatting: install writes our tables (schema_migrations & co) and runs DDL on them;
-- whoever owns them controls their triggers, rules, row security policies and column defaults,
-- which would then run as the installing role. So everything in schema litemaas_hooks must be owned
-- by the installing role itself (our backend functions, handed to the data owner, are the one
-- exception: not tables).
DO $guard$
DECLARE
    bad text;
BEGIN
    SELECT pg_catalog.string_agg(pg_catalog.format('%s (owned by %s)', x.what, x.owner), ', ')
      INTO bad
    FROM (
        SELECT 'schema litemaas_hooks' AS what, n.nspowner AS owner_oid,
               pg_catalog.pg_get_userbyid(n.nspowner) AS owner
        FROM pg_catalog.pg_namespace AS n WHERE n.nspname = 'litemaas_hooks'
        UNION ALL
        SELECT c.oid::regclass::text, c.relowner, pg_catalog.pg_get_userbyid(c.relowner)
        FROM pg_catalog.pg_class AS c
        WHERE c.relnamespace = 'litemaas_hooks'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
    ) AS x
    WHERE x.owner <> CURRENT_USER;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION USING
            MESSAGE = pg_catalog.format('litemaas-hooks objects are owned by another role than %s: %s. Code '
                'that role controls (triggers, defaults, policies) would run as %s during install',
                CURRENT_USER, bad, CURRENT_USER),
            HINT = 'run `litemaas-hooks install` as the role that owns schema litemaas_hooks (the one that '
                'installed it first), or, after checking the objects, make this role their owner '
                '(REASSIGN OWNED / ALTER ... OWNER TO) and run install again',
            ERRCODE = 'insufficient_privilege';
    END IF;
END
$guard$

-- name: role_exists
-- install --grant-relay: does the relay role exist on this server?
SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %(role)s)
