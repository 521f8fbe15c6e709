-- Sessions (refresh-token families), team roles and states, two-factor, audit origin.

-- Roles: viewer reads only. Users are deactivated (reversible) or removed (row kept for the
-- foreign keys, hidden); a removed user's email can be used again.
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check
    CHECK (role IN ('owner', 'admin', 'member', 'viewer'));
ALTER TABLE users ADD COLUMN status text NOT NULL DEFAULT 'active'
    CHECK (status IN ('active', 'deactivated', 'removed'));
ALTER TABLE users DROP CONSTRAINT users_email_key;
CREATE UNIQUE INDEX users_email_live ON users (email) WHERE status <> 'removed';

-- TOTP (RFC 6238): a pending secret until confirmed, then the enabled secret and the last
-- accepted time step (a code is accepted once).
ALTER TABLE users ADD COLUMN totp_pending bytea;
ALTER TABLE users ADD COLUMN totp_secret bytea;
ALTER TABLE users ADD COLUMN totp_enabled_at timestamptz;
ALTER TABLE users ADD COLUMN totp_last_step bigint;

CREATE TABLE recovery_codes (
    user_id     uuid NOT NULL REFERENCES users (id),
    code_hash   bytea NOT NULL CHECK (length(code_hash) = 32),   -- SHA-256 of the code
    used_at     timestamptz,
    PRIMARY KEY (user_id, code_hash)
);

-- One row: team-wide security settings.
CREATE TABLE team_settings (
    id                  boolean PRIMARY KEY DEFAULT true CHECK (id),
    require_two_factor  boolean NOT NULL DEFAULT false,
    updated_at          timestamptz
);
INSERT INTO team_settings (id) VALUES (true);

-- A session is one refresh-token family (RFC 9700 §4.14): its id is the access token's `sid`.
CREATE TABLE sessions (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id),
    created_at      timestamptz NOT NULL,
    last_used_at    timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,             -- sliding: last refresh + lifetime
    ip              text,
    user_agent      text,
    revoked_at      timestamptz,
    revoked_reason  text
);
CREATE INDEX sessions_user ON sessions (user_id) WHERE revoked_at IS NULL;

-- Every refresh token a family was given (only its SHA-256); all but one are rotated.
CREATE TABLE refresh_tokens (
    token_hash  bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    session_id  uuid NOT NULL REFERENCES sessions (id),
    issued_at   timestamptz NOT NULL,
    rotated_at  timestamptz
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Audit rows say where a request came from.
ALTER TABLE audit_log ADD COLUMN ip text;
ALTER TABLE audit_log ADD COLUMN user_agent text;
CREATE INDEX audit_log_action ON audit_log (action, id DESC);
CREATE INDEX audit_log_actor ON audit_log (actor_user_id, id DESC);

-- Every instance caches sessions and users' role and state; changes are announced so every
-- instance applies them at once (payload: the session's or user's uuid; '*' for all users).
CREATE FUNCTION notify_session_revoked() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.revoked_at IS NOT NULL AND OLD.revoked_at IS NULL THEN
        PERFORM pg_notify('session_revoked', NEW.id::text);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER sessions_revoked
AFTER UPDATE OF revoked_at ON sessions
FOR EACH ROW EXECUTE FUNCTION notify_session_revoked();

CREATE FUNCTION notify_user_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('user_changed', OLD.id::text);
    RETURN NULL;
END $$;

CREATE TRIGGER users_changed
AFTER UPDATE OF role, status, totp_enabled_at OR DELETE ON users
FOR EACH ROW EXECUTE FUNCTION notify_user_changed();

CREATE FUNCTION notify_team_settings_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('user_changed', '*');
    RETURN NULL;
END $$;

CREATE TRIGGER team_settings_changed
AFTER UPDATE ON team_settings
FOR EACH ROW EXECUTE FUNCTION notify_team_settings_changed();
