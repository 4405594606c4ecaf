-- lockstock lease table, MySQL / MariaDB. Same DDL as lks_lease_install().
-- VARBINARY name: exact byte comparison (no case folding, no PAD SPACE).
-- DATETIME(6) compared with UTC_TIMESTAMP(6): independent of time zones.
-- lks_lease_purge deletes rows free for a while; the row named X'FF' (no
-- UTF-8 name has that byte) is the fence floor where a new name starts.
CREATE TABLE IF NOT EXISTS lks_lease (
    name        VARBINARY(255) NOT NULL PRIMARY KEY,
    holder      CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL,
    fence       BIGINT NOT NULL,
    acquired_at DATETIME(6) NULL,
    expires_at  DATETIME(6) NOT NULL,
    owner       VARBINARY(288) NULL,           -- "<holder>:<label>" of a labelled grant
    writes      BIGINT NOT NULL DEFAULT 0,     -- fenced writes' guard on Galera (README)
    payload     BLOB NULL,                     -- <holder> + data of the grant that set it
    base        BIGINT NOT NULL DEFAULT 0,     -- the fence a new name started at (floor + 1)
    CONSTRAINT lks_lease_name_nonempty CHECK (LENGTH(name) > 0),
    CONSTRAINT lks_lease_fence_nonneg CHECK (fence >= 0)
) ENGINE=InnoDB;
-- base: the first lks_lease_purge drops its default, so that a client built
-- before the fence floor (which inserts a new name at fence 1, without base)
-- fails instead of sending a purged name's fence back (under a strict
-- sql_mode, the default). Upgrade order: run install with the new version,
-- upgrade every client, then purge.
-- A table made by an older version (0.1: no owner; 0.2: no writes) gains the
-- columns in place (lks_lease_install waits at most 5 s for the metadata lock):
-- ALTER TABLE lks_lease ADD COLUMN IF NOT EXISTS owner VARBINARY(288) NULL,
--     ADD COLUMN IF NOT EXISTS writes BIGINT NOT NULL DEFAULT 0,
--     ADD COLUMN IF NOT EXISTS payload BLOB NULL,
--     ADD COLUMN IF NOT EXISTS base BIGINT NOT NULL DEFAULT 0, ALGORITHM=INSTANT;
