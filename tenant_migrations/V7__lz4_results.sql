-- Stored results (about 6 KB of jsonb for a small simulation) were compressed with pglz on
-- every insert: about a sixth of PostgreSQL's CPU per small simulation under load. lz4 compresses
-- the same documents several times faster. Only the column's attribute changes (no rewrite):
-- rows written from now on use lz4, older rows stay readable as they are.
ALTER TABLE simulations ALTER COLUMN result SET COMPRESSION lz4;
ALTER TABLE idempotency_keys ALTER COLUMN response SET COMPRESSION lz4;
