-- lockstock lease table, MySQL / MariaDB. Same DDL as lks_lease_install().
-- VARBINARY name: exact byte comparison (no case folding, no PAD SPACE).
-- DATETIME(6) compared with UTC_TIMESTAMP(6): independent of time zones.
CREATE TABLE IF NOT EXISTS lks_lease (
    name        VARBINARY(255) NOT NULL PRIMARY KEY,
    holder      CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL,
    fence       BIGINT NOT NULL,
    acquired_at DATETIME(6) NULL,
    expires_at  DATETIME(6) NOT NULL,
    CONSTRAINT lks_lease_name_nonempty CHECK (LENGTH(name) > 0),
    CONSTRAINT lks_lease_fence_nonneg CHECK (fence >= 0)
) ENGINE=InnoDB;
