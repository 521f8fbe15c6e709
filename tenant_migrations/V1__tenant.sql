-- One tenant's tables. Runs with search_path = <tenant schema>, platform; unqualified names
-- land in the tenant schema. Every tenant schema has exactly this shape (migrated in lockstep).

CREATE TABLE users (
    id               uuid PRIMARY KEY,
    email            text NOT NULL UNIQUE,            -- normalised (trimmed, lower case)
    full_name        text NOT NULL,
    password_hash    text NOT NULL,                   -- argon2id PHC string
    role             text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at       timestamptz NOT NULL
);

CREATE TABLE api_keys (
    id            uuid PRIMARY KEY,
    name          text NOT NULL,
    prefix        text NOT NULL,                      -- display prefix, e.g. mk_live_AbC1
    key_hash      bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32), -- SHA-256 of the whole key
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    created_by    uuid REFERENCES users (id),
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz,
    last_used_at  timestamptz,
    revoked_at    timestamptz
);

CREATE TABLE simulations (
    id            uuid PRIMARY KEY,
    created_at    timestamptz NOT NULL,
    api_key_id    uuid REFERENCES api_keys (id),
    user_id       uuid REFERENCES users (id),
    seed          numeric(20, 0) NOT NULL,
    paths         bigint NOT NULL,
    steps         bigint NOT NULL,
    duration_ms   double precision NOT NULL,
    request       jsonb NOT NULL,
    result        jsonb NOT NULL
);
CREATE INDEX simulations_created ON simulations (created_at DESC, id DESC);

CREATE TABLE api_call_logs (
    id            bigserial PRIMARY KEY,
    created_at    timestamptz NOT NULL,
    api_key_id    uuid REFERENCES api_keys (id),
    user_id       uuid REFERENCES users (id),
    method        text NOT NULL,
    endpoint      text NOT NULL,
    status        integer NOT NULL,
    duration_ms   double precision NOT NULL,
    units         bigint NOT NULL DEFAULT 0           -- paths × steps for simulations
);
CREATE INDEX api_call_logs_created ON api_call_logs (created_at);

CREATE TABLE audit_log (
    id                bigserial PRIMARY KEY,
    created_at        timestamptz NOT NULL,
    actor_user_id     uuid REFERENCES users (id),
    actor_api_key_id  uuid REFERENCES api_keys (id),
    action            text NOT NULL,
    target            text,
    details           jsonb NOT NULL DEFAULT '{}'::jsonb
);
