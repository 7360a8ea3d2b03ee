-- Repeatable (run on every `litemaas-hooks install`, before the functions): every table of ours in the
-- backend database, re-created when someone dropped it (migrations 0001 + 0004 created them; this only
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
