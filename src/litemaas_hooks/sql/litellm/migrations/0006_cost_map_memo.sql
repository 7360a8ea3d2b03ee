-- LiteLLM database: LiteLLM's own cost-map answers, shared by every litemaas-hooks process.
--
-- A process that does not run inside the proxy learns the cost-map part of /model/info by importing
-- LiteLLM (seconds) and asking it; it keeps the answers on disk (LITEMAAS_HOOKS_CACHE_DIR) and here, so
-- a fresh pod (a backfill Job, a restarted relay) reads them instead of importing LiteLLM again. One
-- row per (LiteLLM version, cost map) fingerprint; a new version or map never reuses stale answers.
-- Public data only (LiteLLM's cost map as LiteLLM reads it, keyed by litellm_params.model / base_model):
-- never credentials.
CREATE TABLE IF NOT EXISTS litemaas_hooks.cost_map_memo (
    fingerprint    text        PRIMARY KEY,
    litellm_version text       NOT NULL,
    facts          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    answers        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    entries        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE litemaas_hooks.cost_map_memo IS
    'litemaas-hooks: LiteLLM''s own cost-map answers per (LiteLLM version, cost map), so processes need not import LiteLLM.';
