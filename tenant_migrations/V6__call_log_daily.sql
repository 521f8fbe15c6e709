-- Retention: api_call_logs rows older than CALL_LOG_RETENTION_DAYS are rolled up into one row
-- per UTC day and call group, then deleted, so usage totals survive the purge.
CREATE TABLE api_call_daily (
    day              date NOT NULL,
    api_key_id       uuid REFERENCES api_keys (id),
    user_id          uuid REFERENCES users (id),
    method           text NOT NULL,
    endpoint         text NOT NULL,
    status           integer NOT NULL,
    calls            bigint NOT NULL CHECK (calls >= 1),
    units            bigint NOT NULL DEFAULT 0,
    duration_ms_sum  double precision NOT NULL DEFAULT 0,  -- Σ duration × calls
    last_call_at     timestamptz NOT NULL,
    UNIQUE NULLS NOT DISTINCT (day, api_key_id, user_id, method, endpoint, status)
);
