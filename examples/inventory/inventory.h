/* examples/inventory: a flash-sale load test that compares concurrency
 * strategies on PostgreSQL and MySQL/MariaDB. Shared declarations. */
#ifndef INVENTORY_H
#define INVENTORY_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "lockstock.h"

#define INV_MAX_URLS 4
#define INV_MAX_ITEMS 16
#define INV_EXIT_OK 0
#define INV_EXIT_INVARIANT 1
#define INV_EXIT_USAGE 2

typedef enum strategy {
	S_NAIVE,
	S_OPTIMISTIC,
	S_PESSIMISTIC,
	S_PESSIMISTIC_UNFENCED,
	S_SELECT_FOR_UPDATE,
	S_ATOMIC,
	S_ONCE, /* atomic, each order processed once (lks_once_run on its request id) */
	S_PESSIMISTIC_ALL, /* every product's lease at once (lks_lease_acquire_all) */
	S_COUNT
} strategy;

extern const char *const strategy_names[S_COUNT];
bool strategy_is_safe(strategy s);

typedef struct workload {
	const char *urls[INV_MAX_URLS];
	int nurls;
	bool strategies[S_COUNT];
	int workers;
	int products;
	int stock;         /* per product */
	int qty;           /* units per purchase */
	double skew;       /* fraction of purchases aimed at product 1 */
	int items;         /* distinct products per order (all or nothing) */
	int hot;           /* multi-item orders pick from products 1..hot */
	int think_ms;      /* inside the read-write window */
	double duration_s; /* 0: until sold out */
	double max_duration_s;
	uint64_t seed;
	int lease_ttl_ms;
	int lease_wait_ms;
	int max_attempts;  /* optimistic */
	double pause;      /* fraction of lease holders that stall past the TTL */
	double crash;      /* fraction of lease holders that vanish */
	double duplicates; /* fraction of orders delivered twice (retries, redeliveries) */
	const char *json;
	const char *csv;
	const char *chart;
	bool sweep;
	bool quiet;
} workload;

/* One strategy on one database. */
typedef struct result {
	strategy s;
	lks_backend backend;
	int workers, products;
	/* from the database after the run */
	int64_t initial_stock, final_stock, orders, units_sold, oversold, lost_updates;
	bool negative_stock;
	bool invariants_ok;
	/* from the workers */
	double elapsed_s, throughput;
	double p50, p95, p99, max_ms;
	double wait_p50, wait_p99;
	int64_t purchases, attempts, retries, lock_waits, timeouts, errors;
	int64_t fenced_rejections, pauses, crashes, deadlocks;
	int64_t duplicates, replays; /* deliveries of an order again; answered from a record */
	int64_t charged_twice;       /* orders (request ids) charged more than once */
	char first_error[256];
} result;

/* SQL text per dialect */
const char *sql_for(lks_backend b, const char *pg, const char *my);
#define SQL(b, text_pg, text_my) sql_for((b), (text_pg), (text_my))

int options_parse(int argc, char **argv, workload *w);
void options_usage(FILE *out);

/* database setup and checks */
int db_reset(lks_conn *c, const workload *w);
int db_check(lks_conn *c, const workload *w, result *r);

/* one strategy on one database */
int run_strategy(const workload *w, const char *url, strategy s, result *r);

/* reports */
void report_table(FILE *out, const result *rs, int n);
int report_json(const char *path, const workload *w, const result *rs, int n);
int report_csv(const char *path, const result *rs, int n);
int report_chart(const char *path, const result *rs, int n);
#endif
