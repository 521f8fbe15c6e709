-- Transactional outbox for email: a message is written in the same transaction as the token
-- it carries (password reset, email verification, invitation), and a background sender on
-- every instance delivers it over SMTP, claiming rows with FOR UPDATE SKIP LOCKED and
-- retrying with exponential back-off.

CREATE TABLE platform.mail_outbox (
    id               uuid PRIMARY KEY,
    tenant_id        uuid REFERENCES platform.tenants (id) ON DELETE CASCADE,
    kind             text NOT NULL CHECK (kind ~ '^[a-z][a-z_.]{1,63}$'),  -- e.g. password_reset
    recipient        text NOT NULL CHECK (length(recipient) BETWEEN 3 AND 254),
    subject          text NOT NULL CHECK (length(subject) BETWEEN 1 AND 998),
    body_text        text NOT NULL,
    created_at       timestamptz NOT NULL,
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL,   -- not before; also the lease of a claimed row
    sent_at          timestamptz,
    failed_at        timestamptz,            -- gave up after the last attempt
    last_error       text
);
-- The sender's claim: due rows not yet sent nor given up.
CREATE INDEX mail_outbox_due ON platform.mail_outbox (next_attempt_at)
    WHERE sent_at IS NULL AND failed_at IS NULL;
CREATE INDEX mail_outbox_tenant ON platform.mail_outbox (tenant_id);
