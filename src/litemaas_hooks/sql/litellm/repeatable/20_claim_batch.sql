-- Repeatable (run on every `litemaas-hooks install`): the current definition of
-- litemaas_hooks.claim_batch_v1, the relay's claim as ONE statement (outbox.claim_batch).
-- Released migrations keep their original text; functions are code and live here, one per file.
--
-- What it does is what the pipelined claim of the named queries does (queries.sql:
-- complete_events, recover_dead_sessions, claim_events_exclusive, deployments_of_claims), in that
-- order, each statement with a snapshot of its own (a VOLATILE function in READ COMMITTED): the
-- claim's snapshot is taken after the claim lock, so its name exclusion sees every other relay's
-- committed claims; the read of the claimed names' deployments is at least as new as the claim.
-- One call is one statement, so one implicit transaction on any connection: under PgBouncer's
-- transaction pooling too (the search_path is pinned below, not per transaction). Relays of the
-- previous release keep using the named queries; a relay whose role may not call this function
-- (an install or grants older than the relay) falls back to them (relay.py).
--
-- Privileges (docs/privileges.md): SECURITY INVOKER, owned by the installer: it runs with the
-- relay's own privileges on the outbox and LiteLLM's table, lends nobody anything. LiteLLM's table
-- is read by named columns, each cast to the one type this function returns. A cast of a type the
-- table's owner defined would run that owner's code with the relay's privileges, so the columns'
-- types are checked first, in this statement, after the table is locked (no ALTER TABLE can come
-- between the check and the read): a type LiteLLM does not use is refused (litellm_source.py's
-- COLUMN_TYPES; the relay's own check then names the column). Casts between those built-in types
-- only: text/varchar -> text, jsonb/json -> jsonb, timestamp/timestamptz -> timestamp (UTC, fixed
-- below; only the order of the deployments' times is used). LiteLLM 1.81's table has no `blocked`:
-- false.
--
-- One row per claimed event (kind 'event'), one per deployment of a claimed name (kind
-- 'deployment'), and last one row (kind 'summary'): the recovered events' ids and statuses, how
-- many done events were deleted, and when the next pending event is due (seconds, at most
-- p_max_delay_seconds; NULL: nothing pending).
CREATE OR REPLACE FUNCTION litemaas_hooks.claim_batch_v1(
    p_worker text, p_batch_size integer, p_max_delay_seconds double precision, p_done bigint[],
    p_free_interruptions integer, p_max_attempts integer)
RETURNS TABLE (
    kind text,
    -- an event's
    id bigint, op text, model_id text, old_model_name text, new_model_name text,
    attempts integer, created_at timestamptz,
    -- a deployment's (model_id above too)
    model_name text, litellm_params jsonb, model_info jsonb,
    deployment_created_at timestamp, deployment_updated_at timestamp, blocked boolean,
    -- the summary's
    recovered_ids bigint[], recovered_statuses text[], completed integer, next_due double precision
)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
AS $$
#variable_conflict use_column
DECLARE
    v_completed integer := 0;
    v_recovered_ids bigint[];
    v_recovered_statuses text[];
    v_foreign text;
    v_blocked boolean;
    v_names text[];
    v_blocked_ids text[] := '{}';
BEGIN
    IF pg_catalog.cardinality(p_done) > 0 THEN
        DELETE FROM litemaas_hooks.model_events AS e
        WHERE e.id = ANY (p_done) AND e.status = 'claimed' AND e.claimed_by = p_worker;
        GET DIAGNOSTICS v_completed = ROW_COUNT;
    END IF;

    -- dead sessions' claims given back (queries.sql: recover_dead_sessions), then the claim lock
    WITH recovered AS (
        UPDATE litemaas_hooks.model_events AS e
        SET status = CASE WHEN e.interruptions >= p_free_interruptions AND e.attempts >= p_max_attempts
                          THEN 'dead' ELSE 'pending' END,
            attempts = CASE WHEN e.interruptions < p_free_interruptions
                            THEN greatest(e.attempts - 1, 0) ELSE e.attempts END,
            interruptions = e.interruptions + 1,
            last_error = pg_catalog.format(
                'claimed by %s, whose database session ended before it completed (relay stopped '
                'or killed, %s times for this event); %s', e.claimed_by, e.interruptions + 1,
                CASE WHEN e.interruptions < p_free_interruptions
                     THEN 'given back, not counted as an attempt'
                     ELSE 'counted as an attempt (it keeps interrupting relays)' END),
            claimed_at = NULL, claimed_by = NULL, claimed_pid = NULL, claimed_session_start = NULL,
            next_attempt_at = pg_catalog.clock_timestamp()
        WHERE e.status = 'claimed' AND e.claimed_pid IS NOT NULL
          AND NOT EXISTS (
              SELECT 1 FROM pg_catalog.pg_stat_activity AS a
              WHERE a.pid = e.claimed_pid
                AND (a.backend_start IS NULL OR e.claimed_session_start IS NULL
                     OR a.backend_start = e.claimed_session_start)
          )
        RETURNING e.id, e.status
    )
    SELECT pg_catalog.array_agg(r.id ORDER BY r.id), pg_catalog.array_agg(r.status ORDER BY r.id)
    INTO v_recovered_ids, v_recovered_statuses
    FROM recovered AS r;
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('litemaas_hooks.claim'));

    -- the claim (queries.sql: claim_events_exclusive), its snapshot taken after the lock
    RETURN QUERY
    WITH busy AS (
        SELECT c.old_model_name AS name FROM litemaas_hooks.model_events AS c
        WHERE c.status = 'claimed' AND c.claimed_by IS DISTINCT FROM p_worker
          AND c.old_model_name IS NOT NULL
        UNION
        SELECT c.new_model_name FROM litemaas_hooks.model_events AS c
        WHERE c.status = 'claimed' AND c.claimed_by IS DISTINCT FROM p_worker
          AND c.new_model_name IS NOT NULL
    ),
    picked AS (
        SELECT e.id
        FROM litemaas_hooks.model_events AS e
        WHERE e.status = 'pending'
          AND (e.next_attempt_at <= pg_catalog.clock_timestamp()
               OR e.next_attempt_at > pg_catalog.clock_timestamp()
                                      + pg_catalog.make_interval(secs => p_max_delay_seconds))
          AND NOT EXISTS (SELECT 1 FROM busy AS b WHERE b.name IN (e.old_model_name, e.new_model_name))
        ORDER BY e.id
        LIMIT p_batch_size
        FOR UPDATE OF e SKIP LOCKED
    ),
    claimed AS (
        UPDATE litemaas_hooks.model_events AS e
        SET status = 'claimed', claimed_at = pg_catalog.clock_timestamp(), claimed_by = p_worker,
            attempts = e.attempts + 1, claimed_pid = pg_catalog.pg_backend_pid(),
            claimed_session_start = (SELECT a.backend_start FROM pg_catalog.pg_stat_activity AS a
                                     WHERE a.pid = pg_catalog.pg_backend_pid())
        FROM picked
        WHERE e.id = picked.id
        RETURNING e.id, e.op, e.model_id, e.old_model_name, e.new_model_name, e.attempts, e.created_at
    )
    SELECT 'event', c.id, c.op, c.model_id, c.old_model_name, c.new_model_name, c.attempts,
           c.created_at, NULL::text, NULL::jsonb, NULL::jsonb, NULL::timestamp, NULL::timestamp,
           NULL::boolean, NULL::bigint[], NULL::text[], NULL::integer, NULL::double precision
    FROM claimed AS c
    ORDER BY c.id;

    -- LiteLLM's table locked (AccessShareLock, until this transaction ends), then its types
    -- checked: no ALTER TABLE between the check and the read
    PERFORM FROM public."LiteLLM_ProxyModelTable" AS t WHERE false;
    SELECT pg_catalog.string_agg(a.attname || ' is ' || pg_catalog.format_type(a.atttypid, a.atttypmod),
                                 '; ' ORDER BY a.attname)
               FILTER (WHERE NOT a.atttypid = ANY (CASE a.attname
                   WHEN 'model_id' THEN '{25,1043}'::oid[]
                   WHEN 'model_name' THEN '{25,1043}'::oid[]
                   WHEN 'litellm_params' THEN '{3802,114}'::oid[]
                   WHEN 'model_info' THEN '{3802,114}'::oid[]
                   WHEN 'created_at' THEN '{1114,1184}'::oid[]
                   WHEN 'updated_at' THEN '{1114,1184}'::oid[]
                   WHEN 'blocked' THEN '{16}'::oid[] END)),
           pg_catalog.bool_or(a.attname = 'blocked')
    INTO v_foreign, v_blocked
    FROM pg_catalog.pg_attribute AS a
    WHERE a.attrelid = 'public."LiteLLM_ProxyModelTable"'::pg_catalog.regclass
      AND a.attname IN ('model_id', 'model_name', 'litellm_params', 'model_info', 'created_at',
                        'updated_at', 'blocked')
      AND a.attnum > 0 AND NOT a.attisdropped;
    IF v_foreign IS NOT NULL THEN
        RAISE EXCEPTION USING
            MESSAGE = pg_catalog.format('LiteLLM''s table public."LiteLLM_ProxyModelTable" has '
                'columns of types LiteLLM does not use (%s): litemaas-hooks refuses to read it',
                v_foreign),
            ERRCODE = 'invalid_table_definition';
    END IF;

    -- the claimed names' deployments (queries.sql: deployments_of_claims); `blocked` read only
    -- where the table has it (a query naming it could not even be planned on LiteLLM 1.81)
    v_names := ARRAY(
        SELECT DISTINCT v.name
        FROM litemaas_hooks.model_events AS e
        CROSS JOIN LATERAL (VALUES (e.old_model_name), (e.new_model_name)) AS v (name)
        WHERE e.status = 'claimed' AND e.claimed_by = p_worker
          AND e.claimed_pid = pg_catalog.pg_backend_pid() AND v.name IS NOT NULL);
    IF v_blocked THEN
        v_blocked_ids := ARRAY(
            SELECT t.model_id::text FROM public."LiteLLM_ProxyModelTable" AS t
            WHERE t.model_name = ANY (v_names) AND t.blocked);
    END IF;
    RETURN QUERY
    SELECT 'deployment', NULL::bigint, NULL::text, t.model_id::text, NULL::text, NULL::text,
           NULL::integer, NULL::timestamptz, t.model_name::text, t.litellm_params::jsonb,
           t.model_info::jsonb, t.created_at::timestamp, t.updated_at::timestamp,
           t.model_id::text = ANY (v_blocked_ids), NULL::bigint[], NULL::text[], NULL::integer,
           NULL::double precision
    FROM public."LiteLLM_ProxyModelTable" AS t
    WHERE t.model_name = ANY (v_names)
    ORDER BY t.model_name, t.model_id;

    RETURN QUERY
    SELECT 'summary', NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::text, NULL::integer,
           NULL::timestamptz, NULL::text, NULL::jsonb, NULL::jsonb, NULL::timestamp,
           NULL::timestamp, NULL::boolean, v_recovered_ids, v_recovered_statuses, v_completed,
           CASE WHEN pg_catalog.min(q.next_attempt_at) IS NOT NULL THEN
               least(
                   pg_catalog.date_part('epoch', pg_catalog.min(q.next_attempt_at)
                                                 - pg_catalog.clock_timestamp())::double precision,
                   p_max_delay_seconds)
           END
    FROM litemaas_hooks.model_events AS q
    WHERE q.status = 'pending';
END;
$$;

REVOKE ALL ON FUNCTION litemaas_hooks.claim_batch_v1(text, integer, double precision, bigint[],
                                                      integer, integer) FROM PUBLIC;
