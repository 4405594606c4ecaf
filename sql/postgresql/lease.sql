-- lockstock lease table, PostgreSQL. Same DDL as lks_lease_install().
-- One row per lock name; release marks it free, so the fencing counter
-- survives release, expiry and restarts. lks_lease_purge deletes rows free
-- for a while; the row named '' is the fence floor it keeps, where a name
-- seen for the first time starts (floor + 1).
CREATE TABLE IF NOT EXISTS lks_lease (
    name        text PRIMARY KEY,              -- 1..255 bytes, checked by lockstock
    holder      text,                          -- random id of the current grant; NULL when released
    fence       bigint NOT NULL,               -- +1 on every grant
    acquired_at timestamptz,
    expires_at  timestamptz NOT NULL,          -- server clock (clock_timestamp())
    owner       text,                          -- "<holder>:<label>" of a labelled grant
    payload     bytea,                         -- <holder> || data of the grant that set it
    base        bigint NOT NULL DEFAULT 0      -- the fence a new name started at (floor + 1)
);
-- base: the first lks_lease_purge drops its default, so that a client built
-- before the fence floor (which inserts a new name at fence 1, without base)
-- fails instead of sending a purged name's fence back. Upgrade order: run
-- install with the new version, upgrade every client, then purge.
-- No CHECK constraints: PostgreSQL evaluates each on every UPDATE, rebuilding
-- it from its stored text (15-25% of the server's CPU per grant+release).
-- A table from an older version is brought up to date in place by
-- lks_lease_install (catalog only; it waits at most 5 s for the lock):
-- ALTER TABLE lks_lease ADD COLUMN IF NOT EXISTS owner text,
--     ADD COLUMN IF NOT EXISTS payload bytea,
--     ADD COLUMN IF NOT EXISTS base bigint NOT NULL DEFAULT 0,
--     DROP CONSTRAINT IF EXISTS lks_lease_name_check,
--     DROP CONSTRAINT IF EXISTS lks_lease_fence_check;
