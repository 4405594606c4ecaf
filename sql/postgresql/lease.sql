-- lockstock lease table, PostgreSQL. Same DDL as lks_lease_install().
-- One row per lock name; rows are never deleted (release marks them free),
-- so the fencing counter survives release, expiry and restarts.
CREATE TABLE IF NOT EXISTS lks_lease (
    name        text PRIMARY KEY CHECK (octet_length(name) BETWEEN 1 AND 255),
    holder      text,                          -- random id of the current grant; NULL when released
    fence       bigint NOT NULL CHECK (fence >= 0), -- +1 on every grant
    acquired_at timestamptz,
    expires_at  timestamptz NOT NULL,          -- server clock (clock_timestamp())
    owner       text                           -- "<holder>:<label>" of a labelled grant
);
-- A table made before owner labels (lockstock 0.1) gains the column in
-- place (catalog only; lks_lease_install waits at most 5 s for the lock):
-- ALTER TABLE lks_lease ADD COLUMN IF NOT EXISTS owner text;
