-- Idempotency keys for POST /api/v1/simulations (IETF draft-ietf-httpapi-idempotency-key-header).
-- A request claims its key with INSERT … ON CONFLICT DO NOTHING; the response is saved in the
-- same transaction as the simulation row. Keys are kept 24 hours.
CREATE TABLE idempotency_keys (
    key             text PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 255),
    request_hash    bytea NOT NULL CHECK (length(request_hash) = 32),
    status          text NOT NULL CHECK (status IN ('in_progress', 'completed')),
    simulation_id   uuid REFERENCES simulations (id),
    response        jsonb,
    created_at      timestamptz NOT NULL
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
