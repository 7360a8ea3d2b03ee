-- Repeatable (run on every `litemaas-hooks install`, before the functions): every table of ours in the
-- backend database, re-created when someone dropped it (migrations 0001, 0004, 0005 created them; this only
-- repairs, IF NOT EXISTS everywhere). A re-created hidden_models forgets which rows the sync hid: such
-- rows then count as hidden by an admin (kept unavailable) until a full reconcile retires or restores them.

CREATE SCHEMA IF NOT EXISTS litemaas_hooks;

CREATE TABLE IF NOT EXISTS litemaas_hooks.hidden_models (
    model_id  varchar(255) PRIMARY KEY,
    reason    text        NOT NULL CHECK (reason IN ('retired', 'blocked')),
    hidden_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS litemaas_hooks.model_sources (
    model_id varchar(255) PRIMARY KEY,
    from_db  boolean     NOT NULL,
    noted_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS litemaas_hooks.pending_retires (
    model_id  varchar(255) PRIMARY KEY,
    instance  text,
    marked_at timestamptz NOT NULL DEFAULT now(),
    due_at    timestamptz NOT NULL,
    held_at   timestamptz,
    held_why  text
);

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

CREATE TABLE IF NOT EXISTS litemaas_hooks.model_instances (
    model_id varchar(255) NOT NULL,
    instance text        NOT NULL,
    noted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_id, instance)
);
