-- LiteMaaS backend schema fixture (upstream rh-aiservices-bu/litemaas v0.4.0, backend/src/lib/
-- database-migrations.ts), reduced to the tables litemaas-hooks reads or writes and the tables their
-- foreign keys need. Column names, types, defaults, constraint names and triggers match the backend;
-- see /work/shared/reference/litemaas-backend.md.
--
-- Idempotent like the backend, which re-runs all of this on every start: re-applying it simulates a
-- backend restart (it must leave litemaas-hooks' own objects alone, and it does: nothing is dropped
-- except the backend's own triggers, which it re-creates).

-- gen_random_uuid() is built in since PostgreSQL 13; the backend also enables pgcrypto (digest()).
CREATE EXTENSION IF NOT EXISTS pgcrypto;

-- users -------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS users (
    id             UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    username       VARCHAR(255) UNIQUE NOT NULL,
    email          VARCHAR(255) UNIQUE NOT NULL,
    full_name      VARCHAR(255),
    oauth_provider VARCHAR(50) NOT NULL,
    oauth_id       VARCHAR(255) NOT NULL,
    roles          TEXT[] DEFAULT ARRAY['user'],
    is_active      BOOLEAN DEFAULT true,
    max_budget     DECIMAL(10,2) DEFAULT 100.00,
    tpm_limit      INTEGER DEFAULT 10000,
    rpm_limit      INTEGER DEFAULT 60,
    sync_status    VARCHAR(20) DEFAULT 'pending'
                   CONSTRAINT users_sync_status_check CHECK (sync_status IN ('pending', 'synced', 'error')),
    budget_duration VARCHAR(20),
    last_login_at  TIMESTAMP WITH TIME ZONE,
    created_at     TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP,
    updated_at     TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP,
    UNIQUE (oauth_provider, oauth_id)
);
CREATE INDEX IF NOT EXISTS idx_users_email ON users (email);
CREATE INDEX IF NOT EXISTS idx_users_username ON users (username);
CREATE INDEX IF NOT EXISTS idx_users_oauth ON users (oauth_provider, oauth_id);

-- the system user that automated status changes are attributed to (it cannot log in)
INSERT INTO users (id, username, email, oauth_provider, oauth_id, is_active, roles)
VALUES ('00000000-0000-0000-0000-000000000001', 'system', 'system@litemaas.internal',
        'system', 'system', false, '{}')
ON CONFLICT (id) DO NOTHING;

-- teams (minimal) ---------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS teams (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name            VARCHAR(255) NOT NULL,
    alias           VARCHAR(255),
    description     TEXT,
    lite_llm_team_id VARCHAR(255),
    max_budget      DECIMAL(10,2),
    current_spend   DECIMAL(10,2) DEFAULT 0,
    budget_duration VARCHAR(20) DEFAULT 'monthly',
    tpm_limit       INTEGER,
    rpm_limit       INTEGER,
    allowed_models  TEXT[],
    metadata        JSONB DEFAULT '{}',
    is_active       BOOLEAN DEFAULT true,
    created_at      TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP,
    updated_at      TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP,
    created_by      UUID REFERENCES users (id)
);
CREATE INDEX IF NOT EXISTS idx_teams_name ON teams (name);

-- models: the catalogue; id = LiteLLM model_name ---------------------------------------------------
CREATE TABLE IF NOT EXISTS models (
    id                                 VARCHAR(255) PRIMARY KEY,
    name                               VARCHAR(255) NOT NULL,
    provider                           VARCHAR(100) NOT NULL,
    description                        TEXT,
    category                           VARCHAR(100),
    context_length                     INTEGER,
    input_cost_per_token               DECIMAL(15,10),
    output_cost_per_token              DECIMAL(15,10),
    supports_vision                    BOOLEAN DEFAULT false,
    supports_function_calling          BOOLEAN DEFAULT false,
    supports_tool_choice               BOOLEAN DEFAULT false,
    supports_parallel_function_calling BOOLEAN DEFAULT false,
    supports_streaming                 BOOLEAN DEFAULT true,
    features                           TEXT[],
    availability                       VARCHAR(50) DEFAULT 'available',
    version                            VARCHAR(50),
    metadata                           JSONB DEFAULT '{}',
    api_base                           VARCHAR(500),
    tpm                                INTEGER,
    rpm                                INTEGER,
    max_tokens                         INTEGER,
    litellm_model_id                   VARCHAR(255),
    created_at                         TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP,
    updated_at                         TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP
);
-- columns the backend added later with ALTER TABLE (so they come last, as in real databases)
ALTER TABLE models ADD COLUMN IF NOT EXISTS api_base VARCHAR(500);
ALTER TABLE models ADD COLUMN IF NOT EXISTS tpm INTEGER;
ALTER TABLE models ADD COLUMN IF NOT EXISTS rpm INTEGER;
ALTER TABLE models ADD COLUMN IF NOT EXISTS max_tokens INTEGER;
ALTER TABLE models ADD COLUMN IF NOT EXISTS litellm_model_id VARCHAR(255);
ALTER TABLE models ADD COLUMN IF NOT EXISTS backend_model_name VARCHAR(255);
ALTER TABLE models ADD COLUMN IF NOT EXISTS restricted_access BOOLEAN DEFAULT false;
ALTER TABLE models ADD COLUMN IF NOT EXISTS encrypted_api_key TEXT;

CREATE INDEX IF NOT EXISTS idx_models_provider ON models (provider);
CREATE INDEX IF NOT EXISTS idx_models_category ON models (category);
CREATE INDEX IF NOT EXISTS idx_models_availability ON models (availability);
CREATE INDEX IF NOT EXISTS idx_models_litellm_model_id ON models (litellm_model_id);
CREATE INDEX IF NOT EXISTS idx_models_restricted_access ON models (restricted_access);

-- subscriptions ------------------------------------------------------------------------------------
-- model_id has no ON DELETE rule: the FK is named subscriptions_model_id_fkey and a subscription to a
-- model missing from `models` fails with SQLSTATE 23503 (the bug litemaas-hooks fixes).
CREATE TABLE IF NOT EXISTS subscriptions (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    model_id        VARCHAR(255) NOT NULL REFERENCES models (id),
    team_id         UUID REFERENCES teams (id),
    status          VARCHAR(20) NOT NULL DEFAULT 'active',
    quota_requests  INTEGER NOT NULL DEFAULT 0,
    quota_tokens    INTEGER NOT NULL DEFAULT 0,
    used_requests   INTEGER DEFAULT 0,
    used_tokens     INTEGER DEFAULT 0,
    max_budget      DECIMAL(10,2),
    current_spend   DECIMAL(10,2) DEFAULT 0,
    budget_duration VARCHAR(20) DEFAULT 'monthly',
    tpm_limit       INTEGER,
    rpm_limit       INTEGER,
    allowed_models  TEXT[],
    lite_llm_key_value VARCHAR(255),
    reset_at        TIMESTAMP WITH TIME ZONE,
    expires_at      TIMESTAMP WITH TIME ZONE,
    last_sync_at    TIMESTAMP WITH TIME ZONE,
    sync_status     VARCHAR(20) DEFAULT 'pending' CHECK (sync_status IN ('synced', 'pending', 'error')),
    sync_error      TEXT,
    created_at      TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP,
    updated_at      TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT unique_user_model_subscription UNIQUE (user_id, model_id)
);
-- the approval workflow widened the status list and added who/why/when columns
ALTER TABLE subscriptions DROP CONSTRAINT IF EXISTS subscriptions_status_check;
ALTER TABLE subscriptions ADD CONSTRAINT subscriptions_status_check
    CHECK (status IN ('active', 'suspended', 'cancelled', 'expired', 'inactive', 'pending', 'denied'));
ALTER TABLE subscriptions ADD COLUMN IF NOT EXISTS status_reason TEXT;
ALTER TABLE subscriptions ADD COLUMN IF NOT EXISTS status_changed_at TIMESTAMP WITH TIME ZONE;
ALTER TABLE subscriptions ADD COLUMN IF NOT EXISTS status_changed_by UUID REFERENCES users (id);

CREATE INDEX IF NOT EXISTS idx_subscriptions_user_id ON subscriptions (user_id);
CREATE INDEX IF NOT EXISTS idx_subscriptions_model_id ON subscriptions (model_id);
CREATE INDEX IF NOT EXISTS idx_subscriptions_team_id ON subscriptions (team_id);
CREATE INDEX IF NOT EXISTS idx_subscriptions_status ON subscriptions (status);
CREATE INDEX IF NOT EXISTS idx_subscriptions_active ON subscriptions (status) WHERE status = 'active';
CREATE INDEX IF NOT EXISTS idx_subscriptions_status_updated ON subscriptions (status, status_changed_at DESC);

-- api_keys -----------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS api_keys (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    subscription_id UUID REFERENCES subscriptions (id) ON DELETE CASCADE,  -- nullable, legacy
    user_id         UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name            VARCHAR(255),
    key_hash        VARCHAR(255) UNIQUE NOT NULL,
    key_prefix      VARCHAR(20) NOT NULL,
    lite_llm_key_value VARCHAR(255),
    permissions     JSONB DEFAULT '{}',
    max_budget      DECIMAL(10,2),
    current_spend   DECIMAL(10,2) DEFAULT 0,
    tpm_limit       INTEGER,
    rpm_limit       INTEGER,
    tags            TEXT[],
    metadata        JSONB DEFAULT '{}',
    last_used_at    TIMESTAMP WITH TIME ZONE,
    expires_at      TIMESTAMP WITH TIME ZONE,
    is_active       BOOLEAN DEFAULT true,
    created_at      TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP,
    updated_at      TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP,
    revoked_at      TIMESTAMP WITH TIME ZONE,
    last_sync_at    TIMESTAMP WITH TIME ZONE,
    sync_status     VARCHAR(20) DEFAULT 'pending' CHECK (sync_status IN ('synced', 'pending', 'error')),
    sync_error      TEXT,
    migration_status VARCHAR(20) DEFAULT 'pending'
);
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS litellm_key_alias VARCHAR(255);
CREATE INDEX IF NOT EXISTS idx_api_keys_subscription_id ON api_keys (subscription_id);
CREATE INDEX IF NOT EXISTS idx_api_keys_user_id ON api_keys (user_id);
CREATE INDEX IF NOT EXISTS idx_api_keys_is_active ON api_keys (is_active);

-- api_key_models: which models a (multi-model) key may use ---------------------------------------
CREATE TABLE IF NOT EXISTS api_key_models (
    api_key_id UUID NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    model_id   VARCHAR(255) NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (api_key_id, model_id)
);
CREATE INDEX IF NOT EXISTS idx_api_key_models_api_key ON api_key_models (api_key_id);
CREATE INDEX IF NOT EXISTS idx_api_key_models_model ON api_key_models (model_id);

-- audit_logs ---------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS audit_logs (
    id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       UUID REFERENCES users (id),
    action        VARCHAR(100) NOT NULL,
    resource_type VARCHAR(50) NOT NULL,
    resource_id   VARCHAR(255),
    old_values    JSONB,
    new_values    JSONB,
    ip_address    INET,
    user_agent    TEXT,
    session_id    VARCHAR(255),
    success       BOOLEAN DEFAULT true,
    error_message TEXT,
    metadata      JSONB DEFAULT '{}',
    created_at    TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_audit_logs_user_id ON audit_logs (user_id);
CREATE INDEX IF NOT EXISTS idx_audit_logs_action ON audit_logs (action);
CREATE INDEX IF NOT EXISTS idx_audit_logs_resource ON audit_logs (resource_type, resource_id);
CREATE INDEX IF NOT EXISTS idx_audit_logs_created_at ON audit_logs (created_at);

-- updated_at maintenance: the backend's own function and triggers (re-created on every start) -------
CREATE OR REPLACE FUNCTION update_updated_at_column()
RETURNS TRIGGER AS $$
BEGIN
    NEW.updated_at = CURRENT_TIMESTAMP;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS update_users_updated_at ON users;
CREATE TRIGGER update_users_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();
DROP TRIGGER IF EXISTS update_teams_updated_at ON teams;
CREATE TRIGGER update_teams_updated_at BEFORE UPDATE ON teams
    FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();
DROP TRIGGER IF EXISTS update_models_updated_at ON models;
CREATE TRIGGER update_models_updated_at BEFORE UPDATE ON models
    FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();
DROP TRIGGER IF EXISTS update_subscriptions_updated_at ON subscriptions;
CREATE TRIGGER update_subscriptions_updated_at BEFORE UPDATE ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();
DROP TRIGGER IF EXISTS update_api_keys_updated_at ON api_keys;
CREATE TRIGGER update_api_keys_updated_at BEFORE UPDATE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();
