-- litemaas-hooks, backend database: retire safety (a delete that a re-create undoes costs nobody anything).
--
-- pending_retires: a name whose last LiteLLM deployment went is unavailable at once; its cascade
-- (subscriptions, key links, keys, the cascade audit row) waits here until due_at (the grace period),
-- then a relay re-checks LiteLLM and only then cascades. held_at set = held by the mass-retire guard:
-- no cascade until an operator runs `litemaas-hooks retire --confirm` (or the name comes back).
CREATE TABLE IF NOT EXISTS litemaas_hooks.pending_retires (
    model_id  varchar(255) PRIMARY KEY,
    instance  text,
    marked_at timestamptz NOT NULL DEFAULT now(),
    due_at    timestamptz NOT NULL,
    held_at   timestamptz,
    held_why  text
);

-- retire_cascades: exactly what each cascade deactivated, so that `litemaas-hooks restore` can put
-- back exactly that (subscription ids with their previous status, the api_key_models rows removed,
-- the keys deactivated; cascaded_at = the updated_at the cascade left on those rows).
CREATE TABLE IF NOT EXISTS litemaas_hooks.retire_cascades (
    id            bigserial   PRIMARY KEY,
    model_id      varchar(255) NOT NULL,
    cascaded_at   timestamptz NOT NULL DEFAULT now(),
    subscriptions jsonb       NOT NULL DEFAULT '[]'::jsonb,
    key_links     jsonb       NOT NULL DEFAULT '[]'::jsonb,
    api_keys      jsonb       NOT NULL DEFAULT '[]'::jsonb,
    restored_at   timestamptz
);
CREATE INDEX IF NOT EXISTS retire_cascades_model_idx ON litemaas_hooks.retire_cascades (model_id, id);

-- model_instances: which LiteLLM instance (its database's identity) synced each name. A name stays
-- while any instance still has it; each instance retires only what it synced.
CREATE TABLE IF NOT EXISTS litemaas_hooks.model_instances (
    model_id varchar(255) NOT NULL,
    instance text        NOT NULL,
    noted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_id, instance)
);

COMMENT ON TABLE litemaas_hooks.pending_retires IS
    'litemaas-hooks: retired names whose cascade waits for the grace period or an operator (held).';
COMMENT ON TABLE litemaas_hooks.retire_cascades IS
    'litemaas-hooks: what each retire cascade deactivated (litemaas-hooks restore puts it back).';
COMMENT ON TABLE litemaas_hooks.model_instances IS
    'litemaas-hooks: which LiteLLM instance (database identity) synced each model name.';
