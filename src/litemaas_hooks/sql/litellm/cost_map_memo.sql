-- Named queries: the shared cost-map memo (litemaas_hooks.cost_map_memo, migration 0006).

-- name: cost_map_memo_exists
-- (a relay of an older install, or a role without the grants, keeps its answers on disk only)
-- The second column: whether this role may prune old rows (cost_map_memo_prune, pipelined with the
-- first merge: it must not fail there for want of a grant).
SELECT to_regclass('litemaas_hooks.cost_map_memo') IS NOT NULL
   AND has_table_privilege('litemaas_hooks.cost_map_memo', 'SELECT')
   AND has_table_privilege('litemaas_hooks.cost_map_memo', 'INSERT')
   AND has_table_privilege('litemaas_hooks.cost_map_memo', 'UPDATE'),
       to_regclass('litemaas_hooks.cost_map_memo') IS NOT NULL
   AND has_table_privilege('litemaas_hooks.cost_map_memo', 'DELETE');

-- name: cost_map_memo_read
SELECT facts, answers, entries FROM litemaas_hooks.cost_map_memo WHERE fingerprint = %(fingerprint)s;

-- name: cost_map_memo_merge
-- Union with what other processes wrote meanwhile (answers are content-addressed: no clash can
-- differ). Every item is signed (memo_share): a writer's signed facts replace whatever is there (an
-- item that fails verification is ignored by readers and overwritten by the next signed write).
INSERT INTO litemaas_hooks.cost_map_memo AS m (fingerprint, litellm_version, facts, answers, entries)
VALUES (%(fingerprint)s, %(version)s, %(facts)s, %(answers)s, %(entries)s)
ON CONFLICT (fingerprint) DO UPDATE
    SET answers = m.answers || EXCLUDED.answers,
        entries = m.entries || EXCLUDED.entries,
        facts = CASE WHEN EXCLUDED.facts = '{}'::jsonb THEN m.facts ELSE EXCLUDED.facts END,
        updated_at = now();

-- name: cost_map_memo_prune
-- Answers of other LiteLLM versions / cost maps nobody has used for 30 days (an upgrade leaves
-- one).
DELETE FROM litemaas_hooks.cost_map_memo
 WHERE fingerprint <> %(fingerprint)s AND updated_at < now() - interval '30 days';
