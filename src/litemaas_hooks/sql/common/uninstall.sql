-- `litemaas-hooks uninstall`, both databases: refuse when an object outside schema litemaas_hooks depends
-- on one inside it (DROP SCHEMA ... CASCADE would silently drop it too), then drop the schema.

-- name: uninstall_drop_schema
DO $uninstall$
DECLARE
    ns oid := to_regnamespace('litemaas_hooks');
    dependents text;
BEGIN
    IF ns IS NULL THEN
        RETURN;
    END IF;
    WITH ours AS (
        SELECT 'pg_catalog.pg_proc'::regclass AS classid, p.oid AS objid
        FROM pg_catalog.pg_proc AS p WHERE p.pronamespace = ns
        UNION ALL
        SELECT 'pg_catalog.pg_class'::regclass, c.oid FROM pg_catalog.pg_class AS c WHERE c.relnamespace = ns
        UNION ALL
        SELECT 'pg_catalog.pg_type'::regclass, t.oid FROM pg_catalog.pg_type AS t WHERE t.typnamespace = ns
    )
    SELECT string_agg(DISTINCT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid), ', ')
    INTO dependents
    FROM pg_catalog.pg_depend AS d
    JOIN ours AS o ON d.refclassid = o.classid AND d.refobjid = o.objid
    WHERE d.deptype = 'n'
      -- the schema the dependent object lives in (a column default or trigger: its table's)
      AND COALESCE(
            CASE d.classid
                WHEN 'pg_catalog.pg_attrdef'::regclass THEN (SELECT c.relnamespace FROM pg_catalog.pg_attrdef AS a
                    JOIN pg_catalog.pg_class AS c ON c.oid = a.adrelid WHERE a.oid = d.objid)
                WHEN 'pg_catalog.pg_trigger'::regclass THEN (SELECT c.relnamespace FROM pg_catalog.pg_trigger AS t
                    JOIN pg_catalog.pg_class AS c ON c.oid = t.tgrelid WHERE t.oid = d.objid)
                WHEN 'pg_catalog.pg_rewrite'::regclass THEN (SELECT c.relnamespace FROM pg_catalog.pg_rewrite AS r
                    JOIN pg_catalog.pg_class AS c ON c.oid = r.ev_class WHERE r.oid = d.objid)
                WHEN 'pg_catalog.pg_constraint'::regclass THEN (SELECT k.connamespace FROM pg_catalog.pg_constraint AS k
                    WHERE k.oid = d.objid)
            END,
            to_regnamespace((pg_catalog.pg_identify_object(d.classid, d.objid, d.objsubid)).schema)
          ) IS DISTINCT FROM ns;
    IF dependents IS NOT NULL THEN
        RAISE EXCEPTION USING
            MESSAGE = 'not uninstalling: objects outside schema litemaas_hooks depend on it: ' || dependents
                || '. Drop or change them first (DROP SCHEMA litemaas_hooks CASCADE would drop them too)',
            ERRCODE = 'dependent_objects_still_exist';
    END IF;
    DROP SCHEMA litemaas_hooks CASCADE;
END
$uninstall$
