/* Processed-once benchmark (issue #18), every figure measured in one run
 * against its baseline, at 1 and 16 threads, each on distinct keys:
 *   fenced:  acquire a lease, a fenced write (one ledger INSERT), release:
 *            what a lease alone costs for the same effect;
 *   naive:   the dedupe a service writes by hand: one transaction with
 *            INSERT into a processed-keys table (ON CONFLICT DO NOTHING /
 *            INSERT IGNORE) and the ledger INSERT; no in-progress claim, no
 *            stored result, no fence;
 *   once:    lks_once_run's first call (claim, the same ledger INSERT and the
 *            record in one fenced transaction, release);
 *   replay:  lks_once_run on a completed key, against the same record read
 *            by one raw primary-key SELECT (lookup): one round trip each.
 * Usage: once_bench postgresql|mysql [seconds per run, default 3]
 * (URL from LKS_PG_URL / LKS_MYSQL_URL; scripts/bench.sh starts servers at
 * default durability). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "lockstock.h"
#include "stats.h"

#define ROUNDS 3
#define MAX_THREADS 16

typedef enum { V_FENCED, V_NAIVE, V_ONCE, V_REPLAY, V_LOOKUP, V_COUNT } variant;
static const char *const variant_name[V_COUNT] = {"fenced", "naive", "once", "replay", "lookup"};

static const char *url;
static bool pg;
static double run_seconds = 3;
static atomic_long run_id;
static char prefix[32]; /* unique to this invocation: records of earlier ones stay */
static long once_ops[MAX_THREADS]; /* keys the last "once" run completed, per thread */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(lks_conn *c, const char *what)
{
	fprintf(stderr, "once_bench: %s: %s\n", what, c ? lks_conn_errmsg(c) : "");
	exit(1);
}

static void exec(lks_conn *c, const char *sql)
{
	int64_t ignored;
	int rc = lks_conn_query_int(c, sql, NULL, 0, &ignored);
	if (rc != LKS_OK && rc != LKS_NOT_FOUND)
		die(c, sql);
}

static int ledger_insert(lks_conn *c, const char *key)
{
	lks_value p = LKS_TEXT(key);
	int64_t ignored;
	int rc = lks_conn_query_int(c, pg ? "INSERT INTO bench_ledger (request) VALUES ($1)"
	                                  : "INSERT INTO bench_ledger (request) VALUES (?)",
	                            &p, 1, &ignored);
	return rc == LKS_NOT_FOUND ? LKS_OK : rc;
}

static int fenced_effect(lks_conn *c, int64_t fence, void *arg)
{
	(void)fence;
	return ledger_insert(c, arg);
}

static int once_effect(lks_conn *c, lks_once_ctx *ctx, void *arg)
{
	int rc = ledger_insert(c, arg);
	return rc ? rc : lks_once_set_result(ctx, 200, "ok", 2);
}

static int naive(lks_conn *c, const char *key)
{
	lks_value p = LKS_TEXT(key);
	int64_t ignored;
	int rc;
	exec(c, "BEGIN");
	rc = lks_conn_query_int(c, pg ? "INSERT INTO bench_processed (request) VALUES ($1)"
	                                " ON CONFLICT DO NOTHING"
	                              : "INSERT IGNORE INTO bench_processed (request) VALUES (?)",
	                        &p, 1, &ignored);
	if ((rc == LKS_OK || rc == LKS_NOT_FOUND) && (rc = ledger_insert(c, key)) == LKS_OK) {
		rc = lks_conn_query_int(c, "COMMIT", NULL, 0, &ignored);
		return rc == LKS_NOT_FOUND ? LKS_OK : rc;
	}
	exec(c, "ROLLBACK");
	return rc;
}

typedef struct worker {
	variant v;
	int id;
	long ops;
	double *lat;
	int nlat, cap;
	pthread_barrier_t *start;
} worker;

static void *work(void *arg)
{
	worker *w = arg;
	lks_conn *c = NULL;
	char key[96];
	long run = atomic_load(&run_id);
	double end;
	if (lks_conn_open(&c, url))
		die(c, "open");
	pthread_barrier_wait(w->start);
	end = now_s() + run_seconds;
	for (long i = 0; now_s() < end; i++) {
		double t0 = now_s();
		int rc = LKS_OK;
		lks_lease *l = NULL;
		int64_t one;
		/* replays read the keys the "once" runs of this round completed */
		if (w->v == V_REPLAY || w->v == V_LOOKUP)
			snprintf(key, sizeof key, "%s-r%ld-t%d-%ld", prefix, run - 1, w->id, i % once_ops[w->id]);
		else
			snprintf(key, sizeof key, "%s-r%ld-t%d-%ld", prefix, run, w->id, i);
		switch (w->v) {
		case V_FENCED:
			/* a wait: on InnoDB a new name can meet a neighbour's gap lock */
			if ((rc = lks_lease_acquire(&l, c, key, 30000, 10000, NULL)) == LKS_OK) {
				rc = lks_lease_fenced_write(c, l, fenced_effect, key);
				if (lks_lease_release(c, l) && !rc)
					rc = 1;
				lks_lease_free(l);
			}
			break;
		case V_NAIVE: rc = naive(c, key); break;
		case V_ONCE:
		case V_REPLAY: {
			lks_once_result r = {0};
			lks_once_options wait = LKS_ONCE_OPTIONS_INIT;
			wait.wait_ms = 10000; /* as the fenced variant */
			rc = lks_once_run(c, "bench", key, &wait, once_effect, key, &r);
			if (rc == LKS_OK && (w->v == V_REPLAY) != (r.replayed == 1))
				rc = 1;
			lks_once_result_clear(&r);
			break;
		}
		case V_LOOKUP: {
			lks_value p[2] = {LKS_TEXT("bench"), LKS_TEXT(key)};
			rc = lks_conn_query_int(c, pg ? "SELECT fence FROM lks_once WHERE scope = $1 AND request_key = $2"
			                              : "SELECT fence FROM lks_once WHERE scope = ? AND request_key = ?",
			                        p, 2, &one);
			break;
		}
		default: break;
		}
		if (rc)
			die(c, variant_name[w->v]);
		w->ops++;
		if (w->nlat < w->cap)
			w->lat[w->nlat++] = now_s() - t0;
	}
	if (w->v == V_ONCE)
		once_ops[w->id] = w->ops;
	lks_conn_close(c);
	return NULL;
}

/* ops/s and p99 (ms) of one run of v at n threads */
static double measure(variant v, int n, double *p99_ms)
{
	pthread_t th[MAX_THREADS];
	worker w[MAX_THREADS];
	pthread_barrier_t start;
	double *all;
	long ops = 0;
	int nall = 0;
	pthread_barrier_init(&start, NULL, (unsigned)n);
	for (int i = 0; i < n; i++) {
		w[i] = (worker){.v = v, .id = i, .cap = 200000, .start = &start};
		w[i].lat = malloc(sizeof(double) * (size_t)w[i].cap);
		pthread_create(&th[i], NULL, work, &w[i]);
	}
	all = malloc(sizeof(double) * 200000 * (size_t)n);
	for (int i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
		ops += w[i].ops;
		memcpy(all + nall, w[i].lat, sizeof(double) * (size_t)w[i].nlat);
		nall += w[i].nlat;
		free(w[i].lat);
	}
	pthread_barrier_destroy(&start);
	*p99_ms = bench_pct(all, nall, 0.99) * 1000;
	free(all);
	return ops / run_seconds;
}

int main(int argc, char **argv)
{
	lks_conn *c = NULL;
	static const int threads[] = {1, 16};
	if (argc < 2 || (strcmp(argv[1], "postgresql") && strcmp(argv[1], "mysql"))) {
		fprintf(stderr, "usage: once_bench postgresql|mysql [seconds per run]\n");
		return 64;
	}
	pg = !strcmp(argv[1], "postgresql");
	snprintf(prefix, sizeof prefix, "%lx", (long)time(NULL));
	url = getenv(pg ? "LKS_PG_URL" : "LKS_MYSQL_URL");
	if (argc > 2)
		run_seconds = atof(argv[2]);
	if (!url || run_seconds <= 0) {
		fprintf(stderr, "once_bench: set %s; seconds must be > 0\n", pg ? "LKS_PG_URL" : "LKS_MYSQL_URL");
		return 64;
	}
	if (lks_conn_open(&c, url) || lks_lease_install(c) || lks_once_install(c, NULL))
		die(c, "setup");
	exec(c, "DROP TABLE IF EXISTS bench_ledger");
	exec(c, "DROP TABLE IF EXISTS bench_processed");
	exec(c, pg ? "CREATE TABLE bench_ledger (id bigserial PRIMARY KEY, request text NOT NULL)"
	           : "CREATE TABLE bench_ledger (id BIGINT AUTO_INCREMENT PRIMARY KEY,"
	             " request VARCHAR(96) NOT NULL) ENGINE=InnoDB");
	exec(c, pg ? "CREATE TABLE bench_processed (request text PRIMARY KEY)"
	           : "CREATE TABLE bench_processed (request VARCHAR(96) PRIMARY KEY) ENGINE=InnoDB");
	printf("once_bench %s: distinct keys, %g s per run, median of %d rounds (ops/s, p99 ms)\n",
	       argv[1], run_seconds, ROUNDS);
	for (size_t t = 0; t < sizeof threads / sizeof *threads; t++) {
		int n = threads[t];
		double rate[V_COUNT][ROUNDS], p99[V_COUNT][ROUNDS], med[V_COUNT], medp[V_COUNT];
		for (int round = 0; round < ROUNDS; round++) {
			/* interleaved: the machine drifts; replay reads what once wrote */
			atomic_fetch_add(&run_id, 1);
			for (int v = 0; v < V_COUNT; v++) {
				if (v == V_REPLAY)
					atomic_fetch_add(&run_id, 1); /* replay and look up the once run's keys */
				rate[v][round] = measure((variant)v, n, &p99[v][round]);
			}
		}
		for (int v = 0; v < V_COUNT; v++) {
			qsort(rate[v], ROUNDS, sizeof(double), bench_cmp_double);
			qsort(p99[v], ROUNDS, sizeof(double), bench_cmp_double);
			med[v] = rate[v][ROUNDS / 2];
			medp[v] = p99[v][ROUNDS / 2];
		}
		printf("  %2d threads:", n);
		for (int v = 0; v < V_COUNT; v++)
			printf("  %s %.0f/s (p99 %.2f)", variant_name[v], med[v], medp[v]);
		printf("\n  %2d threads: first call costs %.2fx a bare fenced write (target <= 1.5x),"
		       " %.2fx the naive dedupe; a replay costs %.2fx a raw primary-key SELECT of the record\n",
		       n, med[V_FENCED] / med[V_ONCE], med[V_NAIVE] / med[V_ONCE],
		       med[V_LOOKUP] / med[V_REPLAY]);
	}
	lks_conn_close(c);
	return 0;
}
