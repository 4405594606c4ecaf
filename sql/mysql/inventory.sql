-- examples/inventory schema, MySQL / MariaDB (the driver recreates it per run).
CREATE TABLE inv_products (
    id      int PRIMARY KEY,
    stock   int NOT NULL,               -- no CHECK (stock >= 0): naive must be able to oversell
    version bigint NOT NULL DEFAULT 0   -- for the optimistic strategy
);
CREATE TABLE inv_orders (
    id         bigint AUTO_INCREMENT PRIMARY KEY,
    product_id int NOT NULL,
    qty        int NOT NULL,
    strategy   varchar(32) NOT NULL,
    worker     int NOT NULL,
    fence      bigint,                  -- the lease's fencing token (pessimistic)
    created_at datetime(6) NOT NULL DEFAULT UTC_TIMESTAMP(6)
);
