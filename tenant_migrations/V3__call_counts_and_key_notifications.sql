-- Refused calls (429) are recorded in aggregate: one row per key, endpoint and status every few
-- seconds, with the number of calls it stands for.
ALTER TABLE api_call_logs ADD COLUMN calls integer NOT NULL DEFAULT 1 CHECK (calls >= 1);

-- Every instance caches API keys in memory; a change of a key (revocation) is announced so
-- every instance drops its copy at once (payload: the key's SHA-256, hex).
CREATE FUNCTION notify_api_key_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('api_key_changed', encode(OLD.key_hash, 'hex'));
    RETURN NULL;
END $$;

CREATE TRIGGER api_keys_changed
AFTER UPDATE OF status, expires_at OR DELETE ON api_keys
FOR EACH ROW EXECUTE FUNCTION notify_api_key_changed();
