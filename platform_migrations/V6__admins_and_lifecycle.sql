-- Named platform administrators (argon2id password + mandatory TOTP), their sessions, the audit
-- of every admin action, and the tenant lifecycle (soft delete with a grace period).

CREATE TABLE platform.admins (
    id              uuid PRIMARY KEY,
    email           text NOT NULL UNIQUE,                 -- normalised (trimmed, lower case)
    password_hash   text NOT NULL,                        -- argon2id PHC string
    totp_secret     bytea NOT NULL CHECK (length(totp_secret) >= 20),  -- RFC 6238 shared secret
    totp_last_step  bigint NOT NULL DEFAULT 0,            -- last accepted 30 s step (no replay)
    created_at      timestamptz NOT NULL,
    created_by      text NOT NULL                         -- 'bootstrap', 'cli:<os user>' or an admin email
);

-- One row per admin sign-in; the admin JWT names it (`sid`), and a revoked or expired row
-- refuses the token at once.
CREATE TABLE platform.admin_sessions (
    id          uuid PRIMARY KEY,
    admin_id    uuid NOT NULL REFERENCES platform.admins (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    address     text NOT NULL,
    user_agent  text NOT NULL
);
CREATE INDEX admin_sessions_admin ON platform.admin_sessions (admin_id);

-- Every admin action (API and CLI), kept after the tenant it names is purged (no foreign key
-- to tenants). Append-only for the request role.
CREATE TABLE platform.admin_audit (
    id          bigserial PRIMARY KEY,
    created_at  timestamptz NOT NULL,
    admin_id    uuid REFERENCES platform.admins (id),
    actor       text NOT NULL,                            -- the admin's email, or 'cli:<os user>'
    action      text NOT NULL,                            -- e.g. tenant.deleted
    target      text,                                     -- a tenant slug, an admin email, ...
    address     text NOT NULL,
    user_agent  text NOT NULL,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX admin_audit_created ON platform.admin_audit (created_at);

-- Soft delete: a deleted tenant keeps its row (so its slug stays taken) and its schema until
-- purge_after; every credential of it is refused meanwhile. Restoring clears both.
ALTER TABLE platform.tenants
    ADD COLUMN deleted_at timestamptz,
    ADD COLUMN purge_after timestamptz,
    ADD CONSTRAINT tenants_deleted_pair CHECK ((deleted_at IS NULL) = (purge_after IS NULL));
CREATE INDEX tenants_purge_after ON platform.tenants (purge_after) WHERE purge_after IS NOT NULL;
