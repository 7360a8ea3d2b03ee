-- litemaas-hooks, backend database: where each synced row came from.
--
-- One row per backend model the sync wrote: from_db = true when at least one of its LiteLLM deployments
-- is stored in LiteLLM's database (public."LiteLLM_ProxyModelTable"), false when it only comes from
-- LiteLLM's config.yaml. A relay that cannot see config.yaml (the standalone relay) retires, in its
-- periodic full reconcile, only rows known to come from the database: a config-file model never looks
-- "deleted". Rows the backend's own sync wrote count as database rows when LiteLLM said so
-- (metadata.litellm_model_info.db_model = true).
CREATE TABLE IF NOT EXISTS litemaas_hooks.model_sources (
    model_id varchar(255) PRIMARY KEY,
    from_db  boolean     NOT NULL,
    noted_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE litemaas_hooks.model_sources IS
    'litemaas-hooks: whether each synced model comes from LiteLLM''s database (true) or only config.yaml.';
