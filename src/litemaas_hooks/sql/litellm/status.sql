-- Reads of `litemaas-hooks status` (status.py) only: never on the relay's path.

-- name: status_reconcile
-- The last full reconcile (as reconcile_last) and, in the same round trip, whether one runs now:
-- the session holding the fleet-wide lock of reconcile_try_lock in this database (pg_locks shows a
-- bigint advisory key as classid = its high half, objid = its low half, objsubid = 1), with its
-- pid and application_name (pg_stat_activity shows both for every role's sessions). The state
-- row may be missing (has_state false).
SELECT r.id IS NOT NULL AS has_state,
       r.last_started_at, r.last_finished_at, r.last_runner, r.last_summary,
       extract(epoch FROM pg_catalog.clock_timestamp() - r.last_finished_at)::float8
           AS age_seconds,
       h.pid AS running_pid, h.application_name AS running_application,
       extract(epoch FROM pg_catalog.clock_timestamp() - r.last_started_at)::float8
           AS started_seconds_ago
FROM (SELECT pg_catalog.hashtext('litemaas_hooks.full_reconcile')::int8 AS key) AS k
LEFT JOIN litemaas_hooks.reconcile_state AS r ON r.id = 1
LEFT JOIN LATERAL (
    SELECT l.pid, a.application_name
    FROM pg_catalog.pg_locks AS l
    LEFT JOIN pg_catalog.pg_stat_activity AS a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
      AND l.database = (SELECT d.oid FROM pg_catalog.pg_database AS d
                        WHERE d.datname = pg_catalog.current_database())
      AND l.classid = ((k.key >> 32) & 4294967295)::oid
      AND l.objid = (k.key & 4294967295)::oid
    LIMIT 1
) AS h ON true
