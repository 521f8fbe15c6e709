-- Passwords and email: verified addresses, single-use tokens for password reset and email
-- verification, and invitations. Tokens are stored only as their SHA-256; the message that
-- carries a token is written to platform.mail_outbox in the same transaction.

ALTER TABLE users ADD COLUMN email_verified_at timestamptz;

-- The viewer role (also added by the sessions work; this is idempotent with it).
ALTER TABLE users DROP CONSTRAINT IF EXISTS users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check
    CHECK (role IN ('owner', 'admin', 'member', 'viewer'));

CREATE TABLE account_tokens (
    token_hash  bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    purpose     text NOT NULL CHECK (purpose IN ('password_reset', 'email_verification')),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email       text NOT NULL,                   -- the address the token was sent to
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    CHECK (expires_at > created_at)
);
CREATE INDEX account_tokens_user ON account_tokens (user_id, purpose, created_at DESC);

CREATE TABLE invitations (
    id           uuid PRIMARY KEY,
    email        text NOT NULL,                  -- normalised
    role         text NOT NULL CHECK (role IN ('admin', 'member', 'viewer')),
    token_hash   bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    invited_by   uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    accepted_at  timestamptz,
    accepted_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    revoked_at   timestamptz,
    CHECK (expires_at > created_at),
    CHECK (accepted_at IS NULL OR revoked_at IS NULL)
);
CREATE INDEX invitations_created ON invitations (created_at DESC, id DESC);
-- At most one open invitation per address.
CREATE UNIQUE INDEX invitations_open_email ON invitations (email)
    WHERE accepted_at IS NULL AND revoked_at IS NULL;
