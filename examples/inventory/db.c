/* Inventory schema reset and the invariant checks, read back from the
 * database itself after every run. The DDL matches sql/<db>/inventory.sql. */
#include <stdio.h>
#include <string.h>
#include "inventory.h"

const char *sql_for(lks_backend b, const char *pg, const char *my)
{
	return b == LKS_BACKEND_POSTGRESQL ? pg : my;
}

static int exec(lks_conn *c, const char *sql)
{
	int rc = lks_conn_exec(c, sql);
	if (rc)
		fprintf(stderr, "inventory: %s: %s\n", sql, lks_conn_errmsg(c));
	return rc;
}

int db_reset(lks_conn *c, const workload *w)
{
	lks_backend b = lks_conn_backend(c);
	char sql[256];
	int rc;
	if ((rc = exec(c, "DROP TABLE IF EXISTS inv_orders")) || (rc = exec(c, "DROP TABLE IF EXISTS inv_once")) ||
	    (rc = exec(c, "DROP TABLE IF EXISTS inv_products")) ||
	    (rc = exec(c, "CREATE TABLE inv_products (id int PRIMARY KEY, stock int NOT NULL,"
	                  " version bigint NOT NULL DEFAULT 0)")) ||
	    (rc = exec(c, SQL(b,
	                      "CREATE TABLE inv_orders (id bigserial PRIMARY KEY, product_id int NOT NULL,"
	                      " qty int NOT NULL, strategy varchar(32) NOT NULL, worker int NOT NULL,"
	                      " fence bigint, request varchar(48),"
	                      " created_at timestamptz NOT NULL DEFAULT clock_timestamp())",
	                      "CREATE TABLE inv_orders (id bigint AUTO_INCREMENT PRIMARY KEY, product_id int NOT NULL,"
	                      " qty int NOT NULL, strategy varchar(32) NOT NULL, worker int NOT NULL,"
	                      " fence bigint, request varchar(48),"
	                      " created_at datetime(6) NOT NULL DEFAULT UTC_TIMESTAMP(6))"))))
		return rc;
	/* one statement fills all products */
	snprintf(sql, sizeof sql,
	         SQL(b, "INSERT INTO inv_products (id, stock) SELECT g, %d FROM generate_series(1, %d) g",
	             "INSERT INTO inv_products (id, stock) WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL"
	             " SELECT n + 1 FROM g WHERE n < %d) SELECT n, %d FROM g"),
	         b == LKS_BACKEND_POSTGRESQL ? w->stock : w->products,
	         b == LKS_BACKEND_POSTGRESQL ? w->products : w->stock);
	/* recursive CTEs stop at 1000 rows by default: MariaDB calls the limit
	 * max_recursive_iterations, MySQL 8 cte_max_recursion_depth; each server
	 * rejects the other's name, so failures are expected */
	if (b == LKS_BACKEND_MYSQL && w->products > 1000) {
		lks_conn_exec(c, "SET SESSION max_recursive_iterations = 100000000");
		lks_conn_exec(c, "SET SESSION cte_max_recursion_depth = 100000000");
	}
	if ((rc = exec(c, sql)))
		return rc;
	if ((rc = lks_lease_install(c)) || (rc = lks_once_install(c, "inv_once")))
		fprintf(stderr, "inventory: install: %s\n", lks_conn_errmsg(c));
	return rc;
}

static int64_t one(lks_conn *c, const char *sql, int *rc)
{
	int64_t v = 0;
	if (*rc)
		return 0;
	*rc = lks_conn_query_int(c, sql, NULL, 0, &v);
	if (*rc)
		fprintf(stderr, "inventory: %s: %s\n", sql, lks_conn_errmsg(c));
	return v;
}

int db_check(lks_conn *c, const workload *w, result *r)
{
	int rc = 0;
	int64_t mismatched;
	r->initial_stock = (int64_t)w->stock * w->products;
	r->final_stock = one(c, "SELECT COALESCE(SUM(stock), 0) FROM inv_products", &rc);
	r->orders = one(c, "SELECT COUNT(*) FROM inv_orders", &rc);
	r->units_sold = one(c, "SELECT COALESCE(SUM(qty), 0) FROM inv_orders", &rc);
	r->negative_stock = one(c, "SELECT COUNT(*) FROM inv_products WHERE stock < 0", &rc) > 0;
	/* units sold beyond each product's initial stock, summed */
	char sql[512];
	snprintf(sql, sizeof sql,
	         "SELECT COALESCE(SUM(CASE WHEN sold > %d THEN sold - %d ELSE 0 END), 0) FROM"
	         " (SELECT product_id, SUM(qty) AS sold FROM inv_orders GROUP BY product_id) s",
	         w->stock, w->stock);
	r->oversold = one(c, sql, &rc);
	/* products whose sales do not match their stock movement */
	snprintf(sql, sizeof sql,
	         "SELECT COUNT(*) FROM inv_products p LEFT JOIN"
	         " (SELECT product_id, SUM(qty) AS sold FROM inv_orders GROUP BY product_id) s"
	         " ON s.product_id = p.id WHERE COALESCE(s.sold, 0) <> %d - p.stock",
	         w->stock);
	mismatched = one(c, sql, &rc);
	/* an order's line per product: charged twice is a product twice */
	r->charged_twice = one(c, "SELECT COUNT(*) FROM (SELECT request FROM inv_orders WHERE request"
	                          " IS NOT NULL GROUP BY request, product_id HAVING COUNT(*) > 1) t", &rc);
	if (rc)
		return rc;
	r->lost_updates = r->units_sold - (r->initial_stock - r->final_stock);
	/* charging an order twice breaks "once": only the once strategy promises it */
	r->invariants_ok = mismatched == 0 && !r->negative_stock && r->oversold == 0 &&
	                   r->lost_updates == 0 && (r->s != S_ONCE || r->charged_twice == 0);
	return 0;
}
