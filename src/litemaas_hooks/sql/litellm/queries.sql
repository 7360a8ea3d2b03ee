-- Named queries against the LiteLLM database (outbox in schema litemaas_hooks). Loaded with
-- litemaas_hooks.sql.query("litellm", name); every value is a bound parameter.

-- name: listen
LISTEN litemaas_hooks_model_events

-- name: ping
SELECT 1

-- name: claim_events
-- Claim up to batch_size due pending events (oldest first). SKIP LOCKED lets any number of relays
-- claim concurrently without waiting on each other; the claim commits at once (autocommit).
-- attempts is counted here (an attempt interrupted by a dead session is given back:
-- recover_dead_sessions). The claim carries this session's pid and start, so a dead claimer is
-- recognised at once. Due: next_attempt_at has passed, or lies further ahead than any delay we ever
-- set (max_delay): the database clock was stepped back, and an event must not wait for the clock to
-- catch up.
WITH picked AS (
    SELECT id
    FROM litemaas_hooks.model_events
    WHERE status = 'pending'
      AND (next_attempt_at <= clock_timestamp()
           OR next_attempt_at > clock_timestamp() + make_interval(secs => %(max_delay_seconds)s::float8))
    ORDER BY id
    LIMIT %(batch_size)s
    FOR UPDATE SKIP LOCKED
),
claimed AS (
    UPDATE litemaas_hooks.model_events AS e
    SET status = 'claimed', claimed_at = clock_timestamp(), claimed_by = %(worker)s, attempts = e.attempts + 1,
        claimed_pid = pg_backend_pid(),
        claimed_session_start = (SELECT a.backend_start FROM pg_catalog.pg_stat_activity AS a
                                 WHERE a.pid = pg_backend_pid())
    FROM picked
    WHERE e.id = picked.id
    RETURNING e.id, e.op, e.model_id, e.old_model_name, e.new_model_name, e.attempts, e.created_at
)
SELECT id, op, model_id, old_model_name, new_model_name, attempts, created_at FROM claimed

-- name: claim_events_exclusive
-- claim_events, but never an event naming a model name that another relay holds a claim on: one
-- relay at a time converges a name, so the truth claim_batch reads with the claim (deployments_of_claims,
-- same transaction) is never older than what another relay writes after it; a change made meanwhile
-- has an event of its own, claimed after this one completes.
WITH busy AS (
    SELECT c.old_model_name AS name FROM litemaas_hooks.model_events AS c
    WHERE c.status = 'claimed' AND c.claimed_by IS DISTINCT FROM %(worker)s AND c.old_model_name IS NOT NULL
    UNION
    SELECT c.new_model_name FROM litemaas_hooks.model_events AS c
    WHERE c.status = 'claimed' AND c.claimed_by IS DISTINCT FROM %(worker)s AND c.new_model_name IS NOT NULL
),
picked AS (
    SELECT e.id
    FROM litemaas_hooks.model_events AS e
    WHERE e.status = 'pending'
      AND (e.next_attempt_at <= clock_timestamp()
           OR e.next_attempt_at > clock_timestamp() + make_interval(secs => %(max_delay_seconds)s::float8))
      AND NOT EXISTS (SELECT 1 FROM busy AS b WHERE b.name IN (e.old_model_name, e.new_model_name))
    ORDER BY e.id
    LIMIT %(batch_size)s
    FOR UPDATE OF e SKIP LOCKED
),
claimed AS (
    UPDATE litemaas_hooks.model_events AS e
    SET status = 'claimed', claimed_at = clock_timestamp(), claimed_by = %(worker)s, attempts = e.attempts + 1,
        claimed_pid = pg_backend_pid(),
        claimed_session_start = (SELECT a.backend_start FROM pg_catalog.pg_stat_activity AS a
                                 WHERE a.pid = pg_backend_pid())
    FROM picked
    WHERE e.id = picked.id
    RETURNING e.id, e.op, e.model_id, e.old_model_name, e.new_model_name, e.attempts, e.created_at
)
SELECT id, op, model_id, old_model_name, new_model_name, attempts, created_at FROM claimed

-- name: claim_batch
-- The whole claim as ONE statement (repeatable/20_claim_batch.sql): complete the done events, give
-- back dead sessions' claims, claim, read the claimed names' deployments, say when the next event
-- is due. Rows: kind 'event', 'deployment', then one 'summary'.
SELECT r.kind, r.id, r.op, r.model_id, r.old_model_name, r.new_model_name, r.attempts, r.created_at,
       r.model_name, r.litellm_params, r.model_info, r.deployment_created_at,
       r.deployment_updated_at, r.blocked, r.recovered_ids, r.recovered_statuses, r.completed,
       r.next_due
FROM litemaas_hooks.claim_batch_v1(%(worker)s, %(batch_size)s, %(max_delay_seconds)s::float8,
                                   %(done)s::bigint[], %(free_interruptions)s,
                                   %(max_attempts)s) AS r

-- name: deployments_of_claims
-- Every deployment of every model name this session holds a claim on (read in the claim's
-- transaction: the truth is at least as new as the claimed events). Named columns only, as in
-- model_table.sql; the *_without_blocked variant is for LiteLLM 1.81 (no blocked column).
-- Each row also says when the next pending event is due (next_due_seconds, after the claim), and
-- one row with NULL deployment columns says it when no deployment is read.
SELECT d.model_id, d.model_name, d.litellm_params, d.model_info, d.created_at, d.updated_at,
       d.blocked, n.next_due
FROM (
    SELECT CASE WHEN min(q.next_attempt_at) IS NOT NULL THEN
               least(extract(epoch FROM min(q.next_attempt_at) - clock_timestamp())::float8,
                     %(max_delay_seconds)s::float8)
           END AS next_due
    FROM litemaas_hooks.model_events AS q
    WHERE q.status = 'pending'
) AS n
LEFT JOIN (
    SELECT t.model_id, t.model_name, t.litellm_params, t.model_info, t.created_at, t.updated_at,
           coalesce(t.blocked, false) AS blocked
    FROM public."LiteLLM_ProxyModelTable" AS t
    JOIN (
        SELECT DISTINCT v.name
        FROM litemaas_hooks.model_events AS e
        CROSS JOIN LATERAL (VALUES (e.old_model_name), (e.new_model_name)) AS v (name)
        WHERE e.status = 'claimed' AND e.claimed_by = %(worker)s AND e.claimed_pid = pg_backend_pid()
          AND v.name IS NOT NULL
    ) AS wanted (name) ON t.model_name = wanted.name
) AS d ON true
ORDER BY d.model_name, d.model_id

-- name: deployments_of_claims_without_blocked
SELECT d.model_id, d.model_name, d.litellm_params, d.model_info, d.created_at, d.updated_at,
       d.blocked, n.next_due
FROM (
    SELECT CASE WHEN min(q.next_attempt_at) IS NOT NULL THEN
               least(extract(epoch FROM min(q.next_attempt_at) - clock_timestamp())::float8,
                     %(max_delay_seconds)s::float8)
           END AS next_due
    FROM litemaas_hooks.model_events AS q
    WHERE q.status = 'pending'
) AS n
LEFT JOIN (
    SELECT t.model_id, t.model_name, t.litellm_params, t.model_info, t.created_at, t.updated_at,
           false AS blocked
    FROM public."LiteLLM_ProxyModelTable" AS t
    JOIN (
        SELECT DISTINCT v.name
        FROM litemaas_hooks.model_events AS e
        CROSS JOIN LATERAL (VALUES (e.old_model_name), (e.new_model_name)) AS v (name)
        WHERE e.status = 'claimed' AND e.claimed_by = %(worker)s AND e.claimed_pid = pg_backend_pid()
          AND v.name IS NOT NULL
    ) AS wanted (name) ON t.model_name = wanted.name
) AS d ON true
ORDER BY d.model_name, d.model_id

-- name: deployment_ids
-- A full reconcile's first pass: every deployment's key and name, in one scan of LiteLLM's table
-- (no index on model_name, and we may not add one: each chunk then reads its rows by primary key).
SELECT t.model_id, t.model_name
FROM public."LiteLLM_ProxyModelTable" AS t
-- blank: the characters of mapping.BLANK_CHARS (%(blank)s), the rule Python applies too
WHERE t.model_name IS NOT NULL AND pg_catalog.btrim(t.model_name, %(blank)s) <> ''

-- name: deployments_by_id
-- One chunk of a full reconcile: its deployments by primary key (an index scan, not a table scan per
-- chunk), kept only while they still carry one of the chunk's names (a rename since the first pass).
SELECT t.model_id, t.model_name, t.litellm_params, t.model_info, t.created_at, t.updated_at,
       coalesce(t.blocked, false) AS blocked
FROM public."LiteLLM_ProxyModelTable" AS t
WHERE t.model_id = ANY (%(ids)s::text[]) AND t.model_name = ANY (%(names)s::text[])
ORDER BY t.model_name, t.model_id

-- name: deployments_by_id_without_blocked
SELECT t.model_id, t.model_name, t.litellm_params, t.model_info, t.created_at, t.updated_at, false AS blocked
FROM public."LiteLLM_ProxyModelTable" AS t
WHERE t.model_id = ANY (%(ids)s::text[]) AND t.model_name = ANY (%(names)s::text[])
ORDER BY t.model_name, t.model_id

-- name: complete_events
-- Applied: delete. Only our own claims (a claim recovered as stalled and re-claimed elsewhere is
-- kept).
DELETE FROM litemaas_hooks.model_events
WHERE id = ANY(%(ids)s::bigint[]) AND status = 'claimed' AND claimed_by = %(worker)s

-- name: fail_events
-- Not applied: keep the error, retry after base * 2^(attempts-1) seconds (+-10 %% jitter, capped at
-- max_seconds), or give up ('dead') once attempts reached max_attempts.
UPDATE litemaas_hooks.model_events AS e
SET status = CASE WHEN e.attempts >= %(max_attempts)s THEN 'dead' ELSE 'pending' END,
    last_error = f.error,
    next_attempt_at = clock_timestamp() + make_interval(secs => least(
        %(max_seconds)s::float8,
        %(base_seconds)s::float8 * power(2::float8, least(greatest(e.attempts - 1, 0), 60))
            * (0.9 + 0.2 * random())
    )),
    claimed_at = NULL,
    claimed_by = NULL,
    claimed_pid = NULL,
    claimed_session_start = NULL
FROM unnest(%(ids)s::bigint[], %(errors)s::text[]) AS f(id, error)
WHERE e.id = f.id AND e.status = 'claimed' AND e.claimed_by = %(worker)s
RETURNING e.id, e.status, e.attempts, e.next_attempt_at

-- name: release_claims
-- Give our own claims back without counting an attempt (the database went away, not the event
-- failed).
UPDATE litemaas_hooks.model_events
SET status = 'pending', attempts = greatest(attempts - 1, 0), claimed_at = NULL, claimed_by = NULL,
    claimed_pid = NULL, claimed_session_start = NULL,
    next_attempt_at = clock_timestamp(), last_error = %(reason)s
WHERE status = 'claimed' AND claimed_by = %(worker)s
RETURNING id

-- name: defer_events
-- Not the events' fault (a lock held elsewhere, contention): pending again after delay_seconds, the
-- attempt counted at claim time given back.
UPDATE litemaas_hooks.model_events AS e
SET status = 'pending', attempts = greatest(e.attempts - 1, 0), claimed_at = NULL, claimed_by = NULL,
    claimed_pid = NULL, claimed_session_start = NULL,
    next_attempt_at = clock_timestamp() + make_interval(secs => %(delay_seconds)s::float8 * (0.9 + 0.2 * random())),
    last_error = f.reason
FROM unnest(%(ids)s::bigint[], %(reasons)s::text[]) AS f(id, reason)
WHERE e.id = f.id AND e.status = 'claimed' AND e.claimed_by = %(worker)s
RETURNING e.id

-- name: recover_dead_sessions
-- Claims whose claiming database session no longer exists: that relay died (killed, evicted, cut
-- off). Pending again at once; the interrupted attempt is not counted for the first
-- free_interruptions interruptions of an event (after that it is: an event that kills every relay
-- ends up dead). (pg_stat_activity shows every session's pid; backend_start only to the same role,
-- hence the NULL case: the pid alone then.)
-- The same statement takes the claim lock (claim_batch's next statement claims: its snapshot is
-- taken after the lock, so the name exclusion of claim_events_exclusive sees every other relay's
-- committed claims; claims are made one relay at a time, within claim_batch's transaction, held
-- for microseconds; alone, as housekeeping, it is released at once). One row: the recovered
-- events' ids and statuses, two arrays in the same order (NULL: none).
WITH recovered AS (
UPDATE litemaas_hooks.model_events AS e
SET status = CASE WHEN e.interruptions >= %(free_interruptions)s AND e.attempts >= %(max_attempts)s
                  THEN 'dead' ELSE 'pending' END,
    attempts = CASE WHEN e.interruptions < %(free_interruptions)s THEN greatest(e.attempts - 1, 0)
                    ELSE e.attempts END,
    interruptions = e.interruptions + 1,
    last_error = format('claimed by %%s, whose database session ended before it completed (relay stopped '
                        'or killed, %%s times for this event); %%s', e.claimed_by, e.interruptions + 1,
                        CASE WHEN e.interruptions < %(free_interruptions)s THEN 'given back, not counted as an attempt'
                             ELSE 'counted as an attempt (it keeps interrupting relays)' END),
    claimed_at = NULL, claimed_by = NULL, claimed_pid = NULL, claimed_session_start = NULL,
    next_attempt_at = clock_timestamp()
WHERE e.status = 'claimed' AND e.claimed_pid IS NOT NULL
  AND NOT EXISTS (
      SELECT 1 FROM pg_catalog.pg_stat_activity AS a
      WHERE a.pid = e.claimed_pid
        AND (a.backend_start IS NULL OR e.claimed_session_start IS NULL
             OR a.backend_start = e.claimed_session_start)
  )
RETURNING e.id, e.status
)
SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('litemaas_hooks.claim')) AS locked,
       (SELECT pg_catalog.array_agg(r.id ORDER BY r.id) FROM recovered AS r) AS ids,
       (SELECT pg_catalog.array_agg(r.status ORDER BY r.id) FROM recovered AS r) AS statuses

-- name: recover_stalled
-- Claims older than stall_seconds belong to a relay that died or hung: make them pending again (the
-- attempt counted at claim time stays, so an event that keeps killing relays ends up 'dead').
UPDATE litemaas_hooks.model_events
SET status = CASE WHEN attempts >= %(max_attempts)s THEN 'dead' ELSE 'pending' END,
    last_error = format('claimed by %%s at %%s and not completed within %%s s (relay stopped or stalled)',
                        claimed_by, claimed_at, %(stall_seconds)s::float8),
    claimed_at = NULL,
    claimed_by = NULL,
    claimed_pid = NULL,
    claimed_session_start = NULL,
    next_attempt_at = clock_timestamp()
WHERE status = 'claimed'
  AND (claimed_at < clock_timestamp() - make_interval(secs => %(stall_seconds)s::float8)
       -- a claim "in the future": the database clock was stepped back; its age is unknown, count from now
       OR claimed_at > clock_timestamp() + interval '1 minute')
RETURNING id, status

-- name: next_due_seconds
-- Seconds until the earliest pending event is due (<= 0: now), NULL when nothing is pending; never
-- more than max_delay_seconds (a clock stepped back leaves next_attempt_at far ahead: claim_events
-- treats that as due).
-- (least() skips a NULL: without the CASE an empty outbox said "due in max_delay_seconds")
SELECT CASE WHEN min(next_attempt_at) IS NOT NULL THEN
           least(extract(epoch FROM min(next_attempt_at) - clock_timestamp())::float8,
                 %(max_delay_seconds)s::float8)
       END
FROM litemaas_hooks.model_events
WHERE status = 'pending'

-- name: replay_dead
-- Dead events (all, or the given ids) become pending again with a fresh attempt budget; wakes
-- relays.
WITH replayed AS (
    UPDATE litemaas_hooks.model_events
    SET status = 'pending', attempts = 0, next_attempt_at = clock_timestamp()
    WHERE status = 'dead' AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s::bigint[]))
    RETURNING id
)
SELECT (SELECT count(*) FROM replayed)::integer AS replayed, pg_notify('litemaas_hooks_model_events', '')

-- name: enqueue_resync
-- Ask the relays to converge one model name (e.g. after a manual fix); wakes relays.
WITH ins AS (
    INSERT INTO litemaas_hooks.model_events (op, new_model_name)
    VALUES ('RESYNC', %(model_name)s)
    RETURNING id
)
SELECT ins.id, pg_notify('litemaas_hooks_model_events', '') FROM ins

-- name: status_counts
SELECT
    count(*) FILTER (WHERE status = 'pending')::integer AS pending,
    count(*) FILTER (WHERE status = 'claimed')::integer AS claimed,
    count(*) FILTER (WHERE status = 'dead')::integer AS dead,
    -- may be negative when the database clock was stepped back (outbox.counts clamps it at 0)
    extract(epoch FROM clock_timestamp() - min(created_at) FILTER (WHERE status <> 'dead'))::float8
        AS oldest_pending_age_seconds
FROM litemaas_hooks.model_events

-- name: dead_events
SELECT id, op, model_id, old_model_name, new_model_name, attempts, created_at, last_error
FROM litemaas_hooks.model_events
WHERE status = 'dead'
ORDER BY id
LIMIT %(limit)s

-- name: trigger_state
-- Is everything the event flow needs in place? (Never fails, even before install.) The trigger is
-- three statement-level triggers (repeatable/90_trigger.sql): present = all three exist; enabled =
-- all three enabled, of the current kind (tgtype) and calling the current function.
SELECT
    to_regclass('public."LiteLLM_ProxyModelTable"') IS NOT NULL AS table_present,
    to_regclass('litemaas_hooks.model_events') IS NOT NULL AS outbox_present,
    (SELECT count(*) = 3 FROM pg_catalog.pg_trigger AS t
      WHERE t.tgrelid = to_regclass('public."LiteLLM_ProxyModelTable"') AND NOT t.tgisinternal
        AND t.tgname IN ('litemaas_hooks_model_events', 'litemaas_hooks_model_events_insert',
                         'litemaas_hooks_model_events_delete')) AS trigger_present,
    (SELECT count(*) = 3 FROM pg_catalog.pg_trigger AS t
      WHERE t.tgrelid = to_regclass('public."LiteLLM_ProxyModelTable"') AND NOT t.tgisinternal
        AND t.tgenabled = 'O'
        AND t.tgfoid = to_regprocedure('litemaas_hooks.record_model_event_v1()')
        AND (t.tgname, t.tgtype) IN (('litemaas_hooks_model_events', 16::int2),
                                     ('litemaas_hooks_model_events_insert', 4::int2),
                                     ('litemaas_hooks_model_events_delete', 8::int2)))
        AS trigger_enabled

-- name: reconcile_try_lock
-- Session-level: only one periodic full reconcile at a time across the whole fleet.
SELECT pg_try_advisory_lock(hashtext('litemaas_hooks.full_reconcile'))

-- name: reconcile_unlock
SELECT pg_advisory_unlock(hashtext('litemaas_hooks.full_reconcile'))

-- name: reconcile_try_lease
-- Transaction pooling (PgBouncer): no session to hold reconcile_try_lock, so the state row is the
-- lease: due (as reconcile_due) and no unfinished run started within lease_seconds; the row lock
-- makes exactly one concurrent caller win.
UPDATE litemaas_hooks.reconcile_state
SET last_started_at = clock_timestamp(), last_runner = %(runner)s
WHERE id = 1
  AND (last_finished_at IS NULL
       OR last_finished_at < clock_timestamp() - make_interval(secs => %(min_age_seconds)s::float8)
       OR last_finished_at > clock_timestamp())
  AND (last_started_at IS NULL
       OR last_started_at <= coalesce(last_finished_at, '-infinity')
       OR last_started_at < clock_timestamp() - make_interval(secs => %(lease_seconds)s::float8)
       OR last_started_at > clock_timestamp())
RETURNING id

-- name: reconcile_due
-- Has no relay finished a full reconcile within the last min_age_seconds? (a last run "in the
-- future" means the database clock was stepped back: due, not suppressed)
SELECT last_finished_at IS NULL
    OR last_finished_at < clock_timestamp() - make_interval(secs => %(min_age_seconds)s::float8)
    OR last_finished_at > clock_timestamp()
FROM litemaas_hooks.reconcile_state
WHERE id = 1

-- name: reconcile_started
UPDATE litemaas_hooks.reconcile_state
SET last_started_at = clock_timestamp(), last_runner = %(runner)s
WHERE id = 1

-- name: reconcile_finished
UPDATE litemaas_hooks.reconcile_state
SET last_finished_at = clock_timestamp(), last_runner = %(runner)s, last_summary = %(summary)s
WHERE id = 1

-- name: reconcile_last
SELECT last_started_at, last_finished_at, last_runner, last_summary,
       extract(epoch FROM clock_timestamp() - last_finished_at)::float8 AS age_seconds
FROM litemaas_hooks.reconcile_state
WHERE id = 1

-- name: instance_identity
-- Which LiteLLM this is, for the backend's model_instances (two LiteLLMs may share one backend):
-- the database's identity (the server's system identifier and the database name).
SELECT (SELECT s.system_identifier::text FROM pg_catalog.pg_control_system() AS s)
       || '/' || pg_catalog.current_database() AS instance

-- name: begin
-- Explicit transaction statements for pipelined round trips (psycopg's transaction() syncs the
-- pipeline at its start and end: two extra round trips).
BEGIN

-- name: commit
COMMIT

-- name: rollback
ROLLBACK
