-- Platform schema: tiers, tenants, the global API-key directory and quota counters.
-- Runs with search_path = platform (the service creates the schema first).

CREATE TABLE platform.tiers (
    name                          text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{1,31}$'),
    display_name                  text   NOT NULL,
    price_cents_per_month         bigint NOT NULL CHECK (price_cents_per_month >= 0),
    monthly_simulations           bigint CHECK (monthly_simulations IS NULL OR monthly_simulations >= 0), -- NULL = unlimited
    max_paths                     bigint NOT NULL CHECK (max_paths >= 1),
    max_work                      bigint NOT NULL CHECK (max_work >= 1),   -- paths × steps × assets
    burst_per_second              integer NOT NULL CHECK (burst_per_second >= 1),
    burst_size                    integer NOT NULL CHECK (burst_size >= 1),
    max_concurrent_simulations    integer NOT NULL CHECK (max_concurrent_simulations >= 1),
    max_api_keys                  integer CHECK (max_api_keys IS NULL OR max_api_keys >= 1), -- NULL = unlimited
    overage_cents_per_simulation  bigint CHECK (overage_cents_per_simulation IS NULL OR overage_cents_per_simulation >= 0), -- NULL = no overage
    trial_days                    integer CHECK (trial_days IS NULL OR trial_days >= 1),
    sort_order                    integer NOT NULL
);

INSERT INTO platform.tiers
    (name, display_name, price_cents_per_month, monthly_simulations, max_paths, max_work,
     burst_per_second, burst_size, max_concurrent_simulations, max_api_keys,
     overage_cents_per_simulation, trial_days, sort_order)
VALUES
    ('trial',        'Trial',            0,   100,      10000,   50000000,   2,   5, 1,    5, NULL, 30, 0),
    ('starter',      'Starter',       9900,  1000,     100000,  500000000,   5,  10, 2,   10,    5, NULL, 1),
    ('professional', 'Professional', 49900, 10000,    1000000, 5000000000,  20,  40, 4,   50,    5, NULL, 2),
    ('enterprise',   'Enterprise',  299900,  NULL,   10000000, 50000000000, 100, 200, 8, NULL,    5, NULL, 3);

CREATE TABLE platform.tenants (
    id               uuid PRIMARY KEY,
    slug             text NOT NULL UNIQUE CHECK (slug ~ '^[a-z][a-z0-9-]{2,39}$'),
    display_name     text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    schema_name      text NOT NULL UNIQUE CHECK (schema_name ~ '^t_[a-z][a-z0-9_]{2,39}$'),
    tier             text NOT NULL REFERENCES platform.tiers (name),
    status           text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    trial_ends_at    timestamptz,
    overage_enabled  boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);

-- Global index from an API key's SHA-256 hash to its tenant, so a key alone names its tenant
-- and a key presented on another tenant's subdomain is recognised as foreign.
CREATE TABLE platform.api_key_directory (
    key_hash   bytea PRIMARY KEY CHECK (length(key_hash) = 32),
    key_id     uuid NOT NULL UNIQUE,
    tenant_id  uuid NOT NULL REFERENCES platform.tenants (id) ON DELETE CASCADE
);
CREATE INDEX api_key_directory_tenant ON platform.api_key_directory (tenant_id);

-- Monthly simulation counters: the PostgreSQL quota store (used when Redis is not configured).
CREATE TABLE platform.quota_counters (
    tenant_id  uuid NOT NULL REFERENCES platform.tenants (id) ON DELETE CASCADE,
    period     text NOT NULL CHECK (period ~ '^[0-9]{4}-[0-9]{2}$'),
    used       bigint NOT NULL DEFAULT 0 CHECK (used >= 0),
    overage    bigint NOT NULL DEFAULT 0 CHECK (overage >= 0),
    PRIMARY KEY (tenant_id, period)
);
