/* Lease-table cleanup benchmark (issue #18): lks_lease_purge on a table of
 * N free rows (default 1e6, freed two days ago), and what it costs the
 * grants running beside it. Grant latency is measured twice in one run:
 * without a purge (the baseline) and while the purge deletes every old row;
 * the workers take per-request names (a new name each time, the case that
 * grows the table), at 1 and 16 threads.
 * Usage: purge_bench postgresql|mysql [rows, default 1000000] [batch, default 1000]
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

#define TABLE "bench_purge_lease"
#define MAX_THREADS 16
#define MAX_SAMPLES 400000

static const char *url;
static bool pg;
static long rows = 1000000;
static int batch = 1000;
static atomic_int stop, run_no;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(lks_conn *c, const char *what)
{
	fprintf(stderr, "purge_bench: %s: %s\n", what, c ? lks_conn_errmsg(c) : "");
	exit(1);
}

static lks_conn *open_table(void)
{
	lks_conn *c = NULL;
	if (lks_conn_open(&c, url) || lks_lease_set_table(c, TABLE))
		die(c, "open");
	return c;
}

static void exec(lks_conn *c, const char *sql)
{
	int64_t ignored;
	int rc = lks_conn_query_int(c, sql, NULL, 0, &ignored);
	if (rc != LKS_OK && rc != LKS_NOT_FOUND)
		die(c, sql);
}

/* a fresh table of `rows` leases freed two days ago */
static void fill(lks_conn *c)
{
	char sql[512];
	exec(c, "DROP TABLE IF EXISTS " TABLE);
	if (lks_lease_install(c))
		die(c, "install");
	if (pg)
		snprintf(sql, sizeof sql,
		         "INSERT INTO " TABLE " (name, holder, fence, acquired_at, expires_at)"
		         " SELECT 'old-' || g, NULL, 1 + g %% 97, now() - interval '2 days',"
		         " now() - interval '2 days' FROM generate_series(1, %ld) g",
		         rows);
	else
		snprintf(sql, sizeof sql,
		         "INSERT INTO " TABLE " (name, holder, fence, acquired_at, expires_at)"
		         " SELECT CONCAT('old-', seq), NULL, 1 + seq %% 97,"
		         " UTC_TIMESTAMP(6) - INTERVAL 2 DAY, UTC_TIMESTAMP(6) - INTERVAL 2 DAY"
		         " FROM seq_1_to_%ld",
		         rows);
	exec(c, sql);
	/* MySQL's ANALYZE TABLE answers with a status row: run it as a plain statement */
	if (lks_conn_exec(c, pg ? "ANALYZE " TABLE : "ANALYZE TABLE " TABLE))
		die(c, "ANALYZE");
}

typedef struct worker {
	int id;
	long n;
	double *lat_ms;
} worker;

static void *grants(void *arg)
{
	worker *w = arg;
	lks_conn *c = open_table();
	int run = atomic_load(&run_no);
	while (!atomic_load(&stop) && w->n < MAX_SAMPLES) {
		char name[64];
		lks_lease *l = NULL;
		snprintf(name, sizeof name, "req-%d-%d-%ld", run, w->id, w->n);
		double t0 = now_s();
		if (lks_lease_acquire(&l, c, name, 30000, 10000, NULL))
			die(c, "acquire");
		w->lat_ms[w->n++] = (now_s() - t0) * 1000;
		if (lks_lease_release(c, l))
			die(c, "release");
		lks_lease_free(l);
	}
	lks_conn_close(c);
	return NULL;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

typedef struct stats {
	double ops_s, p50, p99;
} stats;

static void *purge_thread(void *arg)
{
	double *out = arg; /* in: nothing; out: elapsed s, rows */
	lks_conn *c = open_table();
	int64_t n = 0;
	double t0 = now_s();
	if (lks_lease_purge(c, 86400000, batch, &n))
		die(c, "purge");
	out[0] = now_s() - t0;
	out[1] = (double)n;
	lks_conn_close(c);
	atomic_store(&stop, 1);
	return NULL;
}

/* grants at `threads` for `seconds`, or, with purge_out, until the purge ends */
static stats measure(int threads, double seconds, double *purge_out)
{
	worker w[MAX_THREADS];
	pthread_t th[MAX_THREADS], pt;
	stats s = {0};
	long total = 0;
	atomic_store(&stop, 0);
	atomic_fetch_add(&run_no, 1);
	double t0 = now_s();
	for (int i = 0; i < threads; i++) {
		w[i] = (worker){.id = i, .lat_ms = malloc(sizeof(double) * MAX_SAMPLES)};
		if (!w[i].lat_ms || pthread_create(&th[i], NULL, grants, &w[i]))
			die(NULL, "thread");
	}
	if (purge_out) {
		if (pthread_create(&pt, NULL, purge_thread, purge_out))
			die(NULL, "thread");
		pthread_join(pt, NULL);
	} else {
		struct timespec d = {(time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9)};
		nanosleep(&d, NULL); /* the run's length, not a wait for a thread */
		atomic_store(&stop, 1);
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		total += w[i].n;
	}
	double elapsed = now_s() - t0;
	double *all = malloc(sizeof(double) * (size_t)(total ? total : 1));
	long k = 0;
	for (int i = 0; i < threads; i++) {
		memcpy(all + k, w[i].lat_ms, sizeof(double) * (size_t)w[i].n);
		k += w[i].n;
		free(w[i].lat_ms);
	}
	qsort(all, (size_t)total, sizeof *all, cmp);
	s.ops_s = total / elapsed;
	s.p50 = total ? all[total / 2] : 0;
	s.p99 = total ? all[(long)(total * 0.99)] : 0;
	free(all);
	return s;
}

int main(int argc, char **argv)
{
	static const int thread_counts[] = {1, 16};
	if (argc < 2 || (strcmp(argv[1], "postgresql") && strcmp(argv[1], "mysql"))) {
		fprintf(stderr, "usage: purge_bench postgresql|mysql [rows] [batch]\n");
		return 64;
	}
	pg = !strcmp(argv[1], "postgresql");
	url = getenv(pg ? "LKS_PG_URL" : "LKS_MYSQL_URL");
	if (!url) {
		fprintf(stderr, "purge_bench: set %s\n", pg ? "LKS_PG_URL" : "LKS_MYSQL_URL");
		return 64;
	}
	if (argc > 2)
		rows = atol(argv[2]);
	if (argc > 3)
		batch = atoi(argv[3]);
	if (rows < 1 || batch < 1 || batch > 10000) {
		fprintf(stderr, "purge_bench: rows >= 1, batch 1..10000\n");
		return 64;
	}
	lks_conn *c = open_table();
	printf("lease-table cleanup, %s: %ld free rows, batches of %d;"
	       " grants on new names beside it\n",
	       argv[1], rows, batch);
	printf("%7s %12s %10s %12s %12s %12s %12s %8s\n", "threads", "purged", "purge s",
	       "rows/s", "grants/s", "p99 ms (no)", "p99 ms (gc)", "ratio");
	for (size_t i = 0; i < sizeof thread_counts / sizeof *thread_counts; i++) {
		int t = thread_counts[i];
		double purge[2] = {0};
		fill(c);
		stats base = measure(t, 3, NULL);
		stats during = measure(t, 0, purge);
		printf("%7d %12.0f %10.2f %12.0f %12.0f %12.2f %12.2f %7.2fx\n", t, purge[1], purge[0],
		       purge[1] / purge[0], during.ops_s, base.p99, during.p99,
		       base.p99 > 0 ? during.p99 / base.p99 : 0);
		if (purge[1] < rows)
			die(NULL, "the purge left old rows behind");
	}
	exec(c, "DROP TABLE IF EXISTS " TABLE);
	lks_conn_close(c);
	return 0;
}
